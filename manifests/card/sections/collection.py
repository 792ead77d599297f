"""Collection process (Gebru et al., "Datasheets for Datasets"): the sources and
search phrases, the download's outcomes and the politeness rules it fetched under."""

from __future__ import annotations

from ..facts import Facts
from .markdown import SHOWN, code, embed, pct, settings_text, table, text

SOURCE_NOTES = {
    "urllist": "a URL list given to the candidates stage (for ImageNet's own lists, ImageNet's terms of access apply)",
    "commons": "Wikimedia Commons search: files under free licences, each with its own attribution terms",
    "openverse": "Openverse search: openly licensed images indexed from many providers",
    "flickr": "Flickr search: photos under the licences the search allowed",
    "demo": "synsetforge's local demo host: generated pictures, not photographs",
}


def section_collection(facts: Facts, figures) -> list[str]:
    lines = ["## Collection process", "", "### Sources and queries", ""]
    rows = facts.rows
    sources = rows.source.value_counts()
    lines += table(
        ["source", "images in the dataset", "what it is"],
        [[text(s), int(n), SOURCE_NOTES.get(s, "")] for s, n in sources.items()],
    ) + [""]
    c = facts.candidates_report
    if c:
        lines.append(
            f"The candidates stage gathered {c['candidates']:,} candidate URLs from {code(c['source'])} "
            f"for {c['classes']:,} classes ({len(c['classes_without_candidates']):,} without any)."
        )
        if c["settings"]:
            lines.append(f"Settings: {settings_text(c['settings'])}.")
        lines.append("")
    else:
        lines += facts.missing("candidates", facts.layout.report("candidates"))
    if facts.synsets is not None:
        queries = facts.synsets[facts.synsets.wnid.isin(facts.classes.wnid)]
        counts = queries.queries.map(len)
        examples = "; ".join(
            f"{code(r.wnid)}: {', '.join(map(text, r.queries[:4]))}" for r in queries.head(3).itertuples()
        )
        lines += [
            f"Search phrases (used by the search sources): {int(counts.sum()):,} over the classes, "
            f"{counts.min()} to {counts.max()} per class, every lemma plus ImageNet's expansion with words of "
            f"ancestor synsets found in the gloss. For example {examples}.",
            "",
        ]
    else:
        lines += [f"The search phrases are unknown (`{facts.name(facts.layout.synsets)}` is absent).", ""]
    lines += embed(figures, "sources", "images by source and by licence")
    lines += ["### Download", ""]
    if not facts.download_report:
        return (
            lines
            + facts.missing("download", facts.layout.report("download"))
            + ["The politeness rules in force when the images were fetched are therefore unknown as well.", ""]
        )
    return lines + _download_lines(facts.download_report, figures) + _politeness_lines(facts.download_report)


def _download_lines(d: dict, figures) -> list[str]:
    candidates = d["candidates"]
    meaning = d["status_meaning"]
    lines = [
        f"{candidates:,} candidate URLs were tried; {d['ok']:,} ({pct(d['ok'], candidates)}) were "
        f"fetched, decoded and stored ({d['bytes_received'] / 1e6:,.1f} MB received, "
        f"{d['bytes_stored'] / 1e6:,.1f} MB stored).",
        "",
    ]
    lines += table(
        ["status", "URLs", "share", "meaning"],
        [[text(s), n, pct(n, candidates), text(meaning.get(s, ""))] for s, n in d["statuses"].items()],
    ) + [""]
    lines += embed(figures, "download", "download outcomes by status")
    hosts = list(d["top_hosts"].items())[:SHOWN]
    if hosts:
        lines += [
            f"Hosts that served the most candidates (top {len(hosts)}):",
            "",
            *table(["host", "URLs", "ok"], [[text(h), sum(c.values()), c.get("ok", 0)] for h, c in hosts]),
            "",
        ]
    below = d["classes_below_min"]
    if below:
        lines += [f"{len(below):,} classes got fewer than {d['min_per_class']} images.", ""]
    return lines + [f"Downloaded: {text(d['finished_at'])} (images served later may have changed or gone).", ""]


def _politeness_lines(download: dict) -> list[str]:
    """The rules the download stage fetched under (``pipeline.download.politeness``) and what each stopped."""
    lines = ["### Politeness", ""]
    rules = download["politeness"]
    stopped = rules["stopped"]
    directives = ", ".join(map(text, rules["optout_directives"]))
    if rules["respect_optouts"]:
        lines.append(
            f"- **Opt-outs respected**: an answer whose `X-Robots-Tag` carried {directives} (for every "
            "crawler or for synsetforge), or whose `tdm-reservation` header was 1, was neither read nor stored: "
            f"{stopped['opted_out']:,} URLs."
        )
    else:
        lines.append(
            "- **Opt-outs were NOT respected** (`RESPECT_OPTOUTS=0`): `X-Robots-Tag` and `tdm-reservation` "
            "opt-outs were ignored, so images whose owners opted out may be in this dataset."
        )
    if rules["respect_robots"]:
        lines.append(
            "- **robots.txt respected** for the `synsetforge` token: "
            f"{stopped['disallowed_by_robots']:,} disallowed URLs were never requested, and "
            f"{stopped['robots_unavailable']:,} URLs of hosts whose robots.txt failed every try were skipped."
        )
    else:
        lines.append(
            "- **robots.txt was NOT respected** (`RESPECT_ROBOTS=0`): URLs that sites disallow for crawlers "
            "were fetched."
        )
    blocklisted = rules["blocklisted_domains"]
    lines.append(
        f"- Domains blocklist: {blocklisted:,} domains, never contacted"
        + (f": {stopped['blocked_domain']:,} URLs." if blocklisted else " (no blocklist given).")
    )
    rate = rules["host_rate"]
    if rate:
        lines.append(
            f"- Pacing: at most {rate:g} requests a second per host, in bursts of up to "
            f"{rules['host_burst']:g}; a 429 or 503 halved the host's rate and paused it."
        )
    elif rate is not None:
        lines.append("- Pacing: none (`HOST_RATE=0`, or the images came from the local demo host, which is not paced).")
    per_host = rules["stopped_per_top_host"]
    if per_host:
        lines += [
            "",
            "URLs stopped by a rule, per host:",
            "",
            *table(
                ["host", "stopped"],
                [
                    [text(h), ", ".join(f"{text(s)} {n:,}" for s, n in c.items())]
                    for h, c in list(per_host.items())[:SHOWN]
                ],
            ),
        ]
    return lines + [""]
