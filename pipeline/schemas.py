"""Every table's pyarrow schema and every report's shape, defined once; stages and tests
import them from here (where each file lives: ``pipeline.layout``).

Each schema carries ``synsetforge.table`` in its metadata so a reader can tell which
table a Parquet file holds. Reports are JSON, written and read through ``pipeline.tables``
(``write_report``/``read_report``), which check the keys declared here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pyarrow as pa

# A WordNet synset id as ImageNet writes it: the part of speech and the 8-digit offset of the
# synset in WordNet 3.0's data file (ImageNet's classes are all nouns, "n").
WNID_RE = re.compile(r"^[nvasr]\d{8}$")
NOUN_WNID = r"n\d{8}"  # unanchored, to build other patterns with
NOUN_WNID_RE = re.compile(f"^{NOUN_WNID}$")


def _table(name: str, *fields: pa.Field) -> pa.Schema:
    return pa.schema(list(fields), metadata={"synsetforge.table": name})


def _required(name: str, type_: pa.DataType, doc: str) -> pa.Field:
    return pa.field(name, type_, nullable=False, metadata={"doc": doc})


SYNSETS = _table(
    "synsets",
    _required("wnid", pa.string(), "'n' + 8-digit offset of the synset in WordNet 3.0 data.noun"),
    _required("class_index", pa.int32(), "0-based position in sorted-wnid order"),
    _required("name", pa.string(), "first lemma, underscores as spaces"),
    _required("lemmas", pa.list_(pa.string()), "all lemmas in WordNet order, underscores as spaces"),
    _required("gloss", pa.string(), "the definition part of the WordNet gloss, as ImageNet shows it"),
    _required("lexname", pa.string(), "lexicographer file, e.g. noun.animal"),
    _required("depth", pa.int32(), "shortest is-a path to entity n00001740"),
    _required("parents", pa.list_(pa.string()), "wnids of the direct hypernyms and instance hypernyms"),
    _required("num_hyponyms", pa.int32(), "direct hyponyms and instance hyponyms in WordNet"),
    _required("is_leaf", pa.bool_(), "no hyponyms in WordNet"),
    _required("queries", pa.list_(pa.string()), "search phrases for candidate collection"),
)


def _optional(name: str, type_: pa.DataType, doc: str) -> pa.Field:
    return pa.field(name, type_, nullable=True, metadata={"doc": doc})


CANDIDATES = _table(
    "candidates",
    _required("candidate_id", pa.string(), "16 hex digits of sha256(wnid TAB url): stable across runs; the image_id"),
    _required("wnid", pa.string(), "the class this candidate was found for"),
    _required("url", pa.string(), "where the image is fetched from"),
    _required("source", pa.string(), "urllist, commons, openverse, flickr or demo"),
    _optional("query", pa.string(), "the search phrase that found it (search sources)"),
    _required("rank", pa.int32(), "0-based position among the class's candidates, best first"),
    _optional("source_id", pa.string(), "the source's own id, e.g. ImageNet's n02084071_17 or a Commons file title"),
    _optional("title", pa.string(), "title or caption given by the source"),
    _optional("creator", pa.string(), "author as given by the source"),
    _optional("license", pa.string(), "licence name as given by the source, e.g. cc-by 4.0"),
    _optional("license_url", pa.string(), "licence deed or the source's licence page"),
    _optional("width", pa.int32(), "size hint from the source, pixels"),
    _optional("height", pa.int32(), "size hint from the source, pixels"),
    _optional("bytes", pa.int64(), "size hint from the source, bytes"),
    _optional("mime", pa.string(), "type hint from the source"),
)


def candidate_id(wnid: str, url: str) -> str:
    """The ``candidate_id`` of a (class, url) pair, which the image keeps as its ``image_id``."""
    return hashlib.sha256(f"{wnid}\t{url}".encode()).hexdigest()[:16]


# pipeline.hashing.Hashes, stored by the download stage and by dedupe.
HASH_FIELDS = tuple(
    _required(
        f"{kind}{view}",
        pa.int64(),
        f"imagehash.{kind} of the {what}, by pipeline.hashing's decoding rule; 64 bits as a signed integer",
    )
    for kind in ("phash", "dhash")
    for view, what in (("", "image"), ("_mirror", "mirror image"), ("_inner", "image less a 5% border"))
)

IMAGES = _table(
    "images",
    _required("image_id", pa.string(), "the candidate_id of the candidate it was fetched for"),
    _required("wnid", pa.string(), "candidate label (not yet verified)"),
    _required("image", pa.binary(), "stored bytes: JPEG re-encoded when normalised, else the original"),
    _required("sha256", pa.string(), "hex digest of the stored bytes"),
    _required("width", pa.int32(), "stored image width, pixels"),
    _required("height", pa.int32(), "stored image height, pixels"),
    _required("format", pa.string(), "stored format as Pillow names it: JPEG, PNG..."),
    *HASH_FIELDS,
    _required("original_width", pa.int32(), "width of the fetched image after EXIF orientation"),
    _required("original_height", pa.int32(), "height of the fetched image after EXIF orientation"),
    _required("original_format", pa.string(), "format of the fetched bytes"),
    _required("source", pa.string(), "candidate source"),
    _required("url", pa.string(), "candidate url"),
    _required("rank", pa.int32(), "candidate rank"),
    _optional("license", pa.string(), "candidate licence"),
)

LEDGER = _table(
    "ledger",
    _required("candidate_id", pa.string(), "one row per candidate of the input shard"),
    _required("wnid", pa.string(), "candidate class"),
    _required("url", pa.string(), "candidate url"),
    _required("host", pa.string(), "host part of the url, lower case ('' when the url has none)"),
    _required("status", pa.string(), "ok or why not: see pipeline.download.status"),
    _optional("http_status", pa.int16(), "status of the last HTTP answer, if any"),
    _optional("error", pa.string(), "what went wrong, in words"),
    _required("bytes", pa.int64(), "body bytes received on the last attempt"),
    _required("attempts", pa.int16(), "requests sent for the image, redirects included"),
    _required("elapsed_ms", pa.int32(), "wall time from first request to outcome"),
)

HASHES = _table(
    "hashes",
    _required("image_id", pa.string(), "the image store's image_id, or the file's path below the hashed folder"),
    _required("wnid", pa.string(), "class of the image ('' when a hashed folder has no class folders)"),
    _required(
        "location", pa.string(), "where the bytes are: images/shard-N.parquet, or the file's path below the folder"
    ),
    _required("sha256", pa.string(), "hex digest of the image's bytes: equal digests are exact copies"),
    _required("width", pa.int32(), "pixels"),
    _required("height", pa.int32(), "pixels"),
    _required("rank", pa.int32(), "the candidate's rank at its source, best first (0 for a folder)"),
    *HASH_FIELDS,
)

CLUSTERS = _table(
    "clusters",
    _required("image_id", pa.string(), "one row per hashed image"),
    _required("wnid", pa.string(), "class of the image"),
    _required("cluster_id", pa.int64(), "images that are copies of each other share it; a unique image has its own"),
    _required(
        "representative", pa.string(), "image_id of the copy the cluster keeps: largest pixel area, then best rank"
    ),
    _required("distance", pa.int16(), "pHash bits between this image and the representative, over the matched views"),
    _required(
        "reason",
        pa.string(),
        "unique, representative, exact, near, mirror, crop, conflict or reference: see pipeline.dedupe.clusters",
    ),
    _required("keep", pa.bool_(), "the image stays in the dataset"),
)

HITS = _table(
    "hits",
    _required("hit_id", pa.string(), "r<round>-<wnid>-<number>: one task, one synset and a grid of images"),
    _required("round", pa.int32(), "annotation round, from 1"),
    _required("wnid", pa.string(), "the synset the worker judges the images for"),
    _required("position", pa.int32(), "0-based place of the image in the grid"),
    _required("image_id", pa.string(), "the image shown"),
    _required("kind", pa.string(), "candidate, or a control: positive (known to show the synset) or negative"),
    _required("assignments", pa.int32(), "answers wanted for this HIT (MTurk's MaxAssignments)"),
    _required("url", pa.string(), "where a worker's browser fetches the image: IMAGE_BASE_URL/<image_id>.jpg"),
)

VOTES = _table(
    "votes",
    _required("hit_id", pa.string(), "the HIT answered"),
    _required("round", pa.int32(), "its round"),
    _required("assignment_id", pa.string(), "one worker's answer to one HIT"),
    _required("worker_id", pa.string(), "who answered"),
    _required("image_id", pa.string(), "one image of the HIT"),
    _required("wnid", pa.string(), "the synset it was judged for"),
    _required("kind", pa.string(), "candidate, positive or negative (controls)"),
    _required("answer", pa.bool_(), "the worker ticked it: it shows the synset"),
    _required("source", pa.string(), "results format it came from: mturk, labelstudio or synsetforge"),
)

LABELS = _table(
    "labels",
    _required("image_id", pa.string(), "the image annotators judged"),
    _required("wnid", pa.string(), "the class they judged it for"),
    _required("accepted", pa.bool_(), "the votes accept the image as a member of the class"),
    _required(
        "decided",
        pa.bool_(),
        "confidence passed the threshold (or the vote cap was reached); else the next round asks again",
    ),
    _required("confidence", pa.float64(), "P(the image shows the synset | its votes) under the method"),
    _required("votes_yes", pa.int32(), "votes that ticked it, from workers not excluded"),
    _required("votes_total", pa.int32(), "votes on it, from workers not excluded"),
    _required("selection_frequency", pa.float64(), "votes_yes / votes_total (ImageNetV2's selection frequency)"),
    _required("method", pa.string(), "majority, dawid_skene or dynamic"),
    _required("round", pa.int32(), "the last round whose votes were counted"),
)

WORKERS = _table(
    "workers",
    _required("worker_id", pa.string(), "a worker"),
    _required("assignments", pa.int32(), "HITs answered"),
    _required("control_answers", pa.int32(), "answers on known positives and negatives"),
    _required("control_correct", pa.int32(), "of which right"),
    _optional("accuracy", pa.float64(), "control_correct / control_answers (null without controls)"),
    _required("excluded", pa.bool_(), "accuracy below MIN_WORKER_ACCURACY: the worker's votes are not counted"),
)

MANIFEST = _table(
    "manifest",
    _required("image_id", pa.string(), "the image store's image_id"),
    _required("label", pa.int64(), "0-based class index in sorted-wnid order (torchvision, Kaggle, Hugging Face)"),
    _required("wnid", pa.string(), "the class"),
    _required(
        "location",
        pa.string(),
        "the image store shard holding the bytes, relative to the dataset folder: images/shard-N.parquet",
    ),
    _required("width", pa.int32(), "pixels"),
    _required("height", pa.int32(), "pixels"),
    _required("sha256", pa.string(), "hex digest of the stored bytes"),
    _required("phash", pa.int64(), "64-bit pHash (pipeline.hashing)"),
    _required("source", pa.string(), "candidate source"),
    _required("source_url", pa.string(), "where the image was fetched"),
    _optional("license", pa.string(), "licence given by the source"),
    _optional("confidence", pa.float64(), "P(shows the class) from annotation; null when unverified"),
    _optional("votes", pa.int32(), "annotation votes counted; null when unverified"),
)

CLASSES = _table(
    "classes",
    _required("label", pa.int64(), "0-based index in sorted-wnid order"),
    _required("wnid", pa.string(), "the class"),
    _required("name", pa.string(), "first lemma"),
    _required("gloss", pa.string(), "WordNet definition"),
    _required("train", pa.int64(), "images in train"),
    _required("val", pa.int64(), "images in val"),
    _required("test", pa.int64(), "images in test"),
)


# -- object boxes (coordinates: pipeline.boxes, integer pixel edges of the stored image,
# 0-based, xmax/ymax exclusive: 0 <= xmin < xmax <= width) ---------------------------------------
BOX_EDGES = (
    ("xmin", "left edge, 0-based"),
    ("ymin", "top edge, 0-based"),
    ("xmax", "right edge, exclusive"),
    ("ymax", "bottom edge, exclusive"),
)
BOX_FIELDS = tuple(
    _required(name, pa.int32(), f"{what} of the box in the stored image's pixels (pipeline.boxes)")
    for name, what in BOX_EDGES
)
BOX_SOURCES = ("crowd", "imported")

BOXES = _table(
    "boxes",
    _required("box_id", pa.string(), "stable id of the box"),
    _required("image_id", pa.string(), "the image the box lies in"),
    _required("wnid", pa.string(), "the class of the boxed object: the image's class"),
    *BOX_FIELDS,
    _required("width", pa.int32(), "width of the stored image, pixels"),
    _required("height", pa.int32(), "height of the stored image, pixels"),
    _required("drawn_by", pa.int32(), "workers whose drawn boxes were merged into this one (0 when imported)"),
    _required("approved_by", pa.int32(), "workers who judged it a good box (0 when imported)"),
    _required("source", pa.string(), "crowd (drawn, judged and merged here) or imported (from a dataset's files)"),
)

# Boxes travel with the splits in their own table beside the manifests, one row per box: an
# image has any number of boxes (none for most of train), so a list column would change the
# one-row-per-image manifest every reader of it relies on, and tools that know nothing of boxes
# keep reading the manifests as they are.
BOX_MANIFEST = _table(
    "box_manifest",
    _required("image_id", pa.string(), "the manifest row's image_id"),
    _required("split", pa.string(), "train, val or test: the split of the image"),
    _required("label", pa.int64(), "the image's label (0-based sorted-wnid index)"),
    _required("wnid", pa.string(), "the image's class, which the boxed object belongs to"),
    *BOX_FIELDS,
    _required("width", pa.int32(), "width of the stored image, pixels"),
    _required("height", pa.int32(), "height of the stored image, pixels"),
    _required("source", pa.string(), "crowd or imported"),
)

BOX_TASK_KINDS = ("draw", "quality", "coverage")

BOX_TASKS = _table(
    "box_tasks",
    _required("task_id", pa.string(), "b<round>-<task>-<...>: one image (draw, coverage) or one box (quality)"),
    _required("round", pa.int32(), "box round, from 1"),
    _required("task", pa.string(), "draw, quality or coverage (Su, Deng and Fei-Fei, HCOMP 2012)"),
    _required("image_id", pa.string(), "the image shown"),
    _required("wnid", pa.string(), "the synset whose instances are boxed"),
    _required("kind", pa.string(), "candidate, or gold: positive (a known good answer) or negative"),
    _optional("box_id", pa.string(), "quality: the box judged"),
    *(_optional(name, pa.int32(), f"quality: the judged box's {what}") for name, what in BOX_EDGES),
    _required(
        "shown",
        pa.list_(pa.list_(pa.int32(), 4)),
        "draw and coverage: the boxes accepted so far, [xmin, ymin, xmax, ymax] each, shown to the worker",
    ),
    _required("width", pa.int32(), "width of the stored image, pixels: the coordinates' frame"),
    _required("height", pa.int32(), "height of the stored image, pixels"),
    _required("assignments", pa.int32(), "answers wanted (MTurk's MaxAssignments)"),
    _required("url", pa.string(), "where a worker's browser fetches the image: IMAGE_BASE_URL/<image_id>.jpg"),
)
_BOX_EDGES_OPTIONAL = tuple(_optional(name, pa.int32(), what) for name, what in BOX_EDGES)

BOX_DRAWS = _table(  # annotation/box-draws.parquet: every box drawn, one row per box
    "box_draws",
    _required("task_id", pa.string(), "the draw task answered"),
    _required("round", pa.int32(), "its box round"),
    _required("assignment_id", pa.string(), "one worker's answer to one task"),
    _required("worker_id", pa.string(), "who drew"),
    _required("image_id", pa.string(), "the image"),
    _required("wnid", pa.string(), "the synset boxed"),
    _required("kind", pa.string(), "candidate, or positive: gold whose one hidden box the drawer must hit"),
    *_BOX_EDGES_OPTIONAL,  # all null: the worker saw no instance left to box
    _required("source", pa.string(), "results format it came from: mturk, labelstudio or synsetforge"),
)

BOX_VOTES = _table(  # annotation/box-votes.parquet: yes/no answers to quality and coverage tasks
    "box_votes",
    _required("task_id", pa.string(), "the task answered"),
    _required("round", pa.int32(), "its box round"),
    _required("task", pa.string(), "quality or coverage"),
    _required("assignment_id", pa.string(), "one worker's answer to one task"),
    _required("worker_id", pa.string(), "who answered"),
    _required("image_id", pa.string(), "the image"),
    _required("wnid", pa.string(), "the synset"),
    _optional("box_id", pa.string(), "quality: the box judged"),
    _required("kind", pa.string(), "candidate, or gold: positive (yes is right) or negative (no is right)"),
    _required("answer", pa.bool_(), "quality: a good box of one instance; coverage: every instance is boxed"),
    _required("source", pa.string(), "results format it came from: mturk, labelstudio or synsetforge"),
)

BOX_CANDIDATES = _table(  # annotation/box-candidates.parquet: merged draws and their quality verdict
    "box_candidates",
    _required("box_id", pa.string(), "b<round>-<image_id>-<digest of the merged assignments>"),
    _required("round", pa.int32(), "the draw round it was drawn in"),
    _required("image_id", pa.string(), "the image"),
    _required("wnid", pa.string(), "the synset"),
    *BOX_FIELDS,
    _required("width", pa.int32(), "width of the stored image, pixels"),
    _required("height", pa.int32(), "height of the stored image, pixels"),
    _required("drawn_by", pa.int32(), "drawn boxes merged into it (per-coordinate median)"),
    _required("votes_yes", pa.int32(), "counted quality votes calling it good"),
    _required("votes_total", pa.int32(), "counted quality votes"),
    _required("status", pa.string(), "accepted, rejected or undecided (no counted quality vote yet)"),
)

BOX_IMAGES = _table(  # annotation/box-images.parquet: where each image stands in the box loop
    "box_images",
    _required("image_id", pa.string(), "an image asked to be boxed"),
    _required("wnid", pa.string(), "its class"),
    _required("width", pa.int32(), "width of the stored image, pixels"),
    _required("height", pa.int32(), "height of the stored image, pixels"),
    _required("draw_rounds", pa.int32(), "rounds whose draw task got counted answers"),
    _required("last_draw", pa.int32(), "the last of them (0: none)"),
    _required("pending", pa.int32(), "candidate boxes awaiting a quality decision"),
    _required("boxes", pa.int32(), "boxes accepted"),
    _required(
        "coverage",
        pa.string(),
        "since the last draw: complete, incomplete, undecided, unasked; nothing_left (the last draw "
        "found no instance left) and imported count as complete",
    ),
)


@dataclass(frozen=True)
class Report:
    """A stage's JSON report, ``reports/<stage>.json`` (``pipeline.layout.report_name``): the
    keys every writer must give and every reader may rely on, with their JSON types (``float``
    takes an integer too; ``None`` in a tuple allows null). A report may hold more keys."""

    stage: str
    fields: dict[str, type | tuple]


SYNSETS_REPORT = Report(
    "synsets",
    {
        "subset": str,
        "settings": dict,
        "wordnet": dict,
        "num_synsets": int,
        "num_ancestors": int,
        "num_is_a_edges": int,
        "num_ancestor_pairs": int,
        "ancestor_pairs": list,
        "depth_histogram": dict,
        "lexnames": dict,
        "duplicate_names": dict,
    },
)
CANDIDATES_REPORT = Report(
    "candidates",
    {
        "settings": dict,
        "source": str,
        "candidates": int,
        "shards": int,
        "classes": int,
        "classes_without_candidates": list,
        "per_class": dict,
    },
)
DOWNLOAD_REPORT = Report(
    "download",
    {
        "settings": dict,
        "finished_at": str,
        "candidates": int,
        "ok": int,
        "ok_percent": float,
        "statuses": dict,
        "shards": int,
        "shards_this_run": int,
        "bytes_received": int,
        "bytes_stored": int,
        "worker_seconds_this_run": float,
        "min_per_class": int,
        "classes_below_min": list,
        "per_class": dict,
        "top_hosts": dict,
        "status_meaning": dict,
        "politeness": dict,
    },
)
DEDUPE_REPORT = Report(
    "dedupe",
    {
        "settings": dict,
        "images": int,
        "kept": int,
        "dropped": dict,
        "reasons": dict,
        "reason_meaning": dict,
        "clusters_with_copies": int,
        "largest_cluster": int,
        "verified_pairs": dict,
        "conflicts": list,
        "unreadable_files": list,
        "per_class": dict,
        "seconds": dict,
    },
)
ANNOTATE_EXPORT_REPORT = Report(  # one per round: reports/annotate-export-<round>.json
    "annotate-export",
    {
        "settings": dict,
        "round": int,
        "hits": int,
        "images": int,
        "answers_wanted": int,
        "votes_wanted": int,
        "controls_per_hit": float,
        "hits_without_controls": int,
        "formats": list,
        "image_base_url": str,
    },
)
ANNOTATE_IMPORT_REPORT = Report(
    "annotate-import",
    {
        "settings": dict,
        "rounds": list,
        "votes": int,
        "candidate_votes_counted": int,
        "workers": int,
        "workers_excluded": list,
        "images_asked": int,
        "images_with_votes": int,
        "accepted": int,
        "rejected": int,
        "undecided": int,
        "mean_votes_per_image": float,
        # Fleiss' kappa and pair agreement of the counted candidate votes (null with no image
        # of two votes): images, observed, chance, yes_share, kappa (null when undefined), unanimous
        "agreement": (dict, None),
        "per_class": dict,
        "last_import": dict,
    },
)
ANNOTATE_EXPORT_BOX_REPORT = Report(  # one per round and task: reports/annotate-export-box-<round>-<task>.json
    "annotate-export-box",
    {
        "settings": dict,
        "round": int,
        "task": str,
        "tasks": int,
        "gold": int,
        "gold_note": (str, None),  # why a round has no gold (none known yet), else null
        "images": int,
        "answers_wanted": int,
        "formats": list,
        "image_base_url": str,
    },
)
ANNOTATE_IMPORT_BOXES_REPORT = Report(
    "annotate-import-boxes",
    {
        "settings": dict,
        "rounds": list,
        "draws": int,
        "votes": int,
        "candidates": int,
        "accepted": int,
        "rejected": int,
        "undecided": int,
        "images": int,  # images asked to be boxed so far
        "images_complete": int,
        "images_needing_draw": int,
        "images_capped": int,
        "images_pending_quality": int,
        "images_pending_coverage": int,
        "workers": int,
        "workers_excluded": list,
        "mean_boxes_per_image": float,  # over the complete images
        "per_class": dict,  # wnid -> {images, complete, boxes}
        "last_import": dict,
    },
)
MANIFESTS_REPORT = Report(  # written by the manifests stage, and by the import stage
    "manifests",
    {
        "settings": dict,
        "verified": (bool, str),  # "imported": the labels the imported dataset gave
        "plan": (dict, None),  # null for an import: its splits are the ones it came with
        "classes": int,
        "images": dict,
        "classes_below_min_train": list,
        "classes_dropped": list,
        "per_class": dict,
        "fingerprint": str,
    },
)
VALIDATE_REPORT = Report(
    "validate",
    {"settings": dict, "dataset": str, "images": dict, "classes": int, "checks": dict},
)
IMPORT_REPORT = Report(
    "import",
    {
        "settings": dict,
        "src": str,
        "layout": str,
        "names_from": (str, None),
        "images": dict,
        "classes": int,
        "unknown_wnids": list,
        "unreadable": list,
        "unlabelled": (list, int),
        "ignored_files": (list, int),
        "empty_classes": list,
        "classes_missing_from": dict,
    },
)
# A baseline run's figures, runs/<name>/metrics.json (baseline.run_folder): the run folder is
# the trainer's, so this report lives there rather than under reports/.
TRAIN_METRICS = Report(
    "train",
    {
        "dataset": str,
        "inputs": list,
        "arch": str,
        "classes": int,
        "settings": dict,
        "device": str,
        "epochs_done": int,
        "images": dict,
        "chance_top1_error": float,
        "val": (dict, None),
        "test": (dict, None),
        "history": list,
    },
)
# A submission's scores on a split, evaluations/<split>-<name>.json (pipeline.evaluation),
# beside its per-class table <split>-<name>.csv: one per submission, not under reports/.
EVALUATE_REPORT = Report(
    "evaluate",
    {
        "dataset": str,
        "submission": str,
        "submission_sha256": str,
        "split": str,
        "images": int,
        "images_with_boxes": int,  # the images the localization errors are over
        "localized": bool,  # the submission's guesses have boxes
        "iou_threshold": float,
        "top1_error": float,
        "top5_error": float,
        "top1_loc_error": (float, None),  # null when the split has no boxes or the submission none
        "top5_loc_error": (float, None),
        "per_class": dict,  # wnid -> label, name, images, the errors, images_with_boxes
        "per_class_csv": str,
    },
)
REPORTS = {
    r.stage: r
    for r in (
        SYNSETS_REPORT,
        CANDIDATES_REPORT,
        DOWNLOAD_REPORT,
        DEDUPE_REPORT,
        ANNOTATE_EXPORT_REPORT,
        ANNOTATE_IMPORT_REPORT,
        ANNOTATE_EXPORT_BOX_REPORT,
        ANNOTATE_IMPORT_BOXES_REPORT,
        MANIFESTS_REPORT,
        VALIDATE_REPORT,
        IMPORT_REPORT,
        TRAIN_METRICS,
        EVALUATE_REPORT,
    )
}
