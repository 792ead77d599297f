#!/usr/bin/env bash
# AlexNet training speed on one GPU, as one prepared run (a few minutes on an H100).
#
# 1. Packs a synthetic dataset in the Hugging Face layout the trainer reads with --packed:
#    data/train-0000K-of-0000N.parquet (image: struct<bytes, path>, label: int64), 1000 classes,
#    IMAGES JPEGs of 500x375 (ILSVRC's typical size; the demo's class pictures, about 110 KB
#    each), and a validation shard.
# 2. Model alone: forward, backward and SGD step at batch BATCH (256), bf16 autocast,
#    channels_last, on tensors already on the GPU: images/s and peak GPU memory, eager and
#    with torch.compile.
# 3. With data loading: `python -m baseline train --packed ...` for STEPS steps, decoding with
#    Pillow in DataLoader workers (--decode cpu) and with nvJPEG batches on the GPU (--decode
#    gpu): images/s, the share of time the loop waited for data, peak GPU memory.
#
# Needs python3 with torch (CUDA), numpy, pyarrow, Pillow, matplotlib and tqdm; torchvision for --decode gpu.
# Packages the machine lacks travel as wheels in .whl/ (see /work/.library/device/README.md):
#   bash bench/train_gpu.sh                       # on the GPU machine, from the repository root
#   IMAGES=8192 STEPS=30 bash bench/train_gpu.sh  # smaller
#   DRY_RUN=1 bash bench/train_gpu.sh             # the same steps on a CPU, tiny, to check the script
# Prints a summary last; writes the logs and run folders (metrics.jsonl, metrics.json) under $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/train-gpu}
WORK=${WORK:-/tmp/train-gpu-data}
IMAGES=${IMAGES:-16384}
BATCH=${BATCH:-256}
STEPS=${STEPS:-60}
SIZE=${SIZE:-224}
WORKERS=${WORKERS:-$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))}
DEVICE=cuda
if [ -n "${DRY_RUN:-}" ]; then
  IMAGES=256 BATCH=16 STEPS=3 SIZE=64 WORKERS=1 DEVICE=cpu WORK=$WORK-dry
fi
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 DEVICE

if compgen -G ".whl/*.whl" > /dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi

$PY - <<'PYTHON'
import importlib.util, os, sys
missing = [m for m in ("torch", "numpy", "pyarrow", "PIL", "matplotlib", "tqdm") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing: {', '.join(missing)}: carry them as wheels in .whl/")
import torch
if os.environ["DEVICE"] == "cuda" and not torch.cuda.is_available():
    sys.exit("no CUDA device (DRY_RUN=1 runs the steps on a CPU)")
tv = importlib.util.find_spec("torchvision") is not None
name = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
print(f"torch {torch.__version__}, {name}, torchvision {'yes' if tv else 'no (no GPU decoding)'}")
PYTHON
if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv,noheader || true
fi

# -- 1. packed data
$PY - "$WORK/packed" "$IMAGES" <<'PYTHON'
import os, sys, time
from multiprocessing import Pool
import pyarrow as pa, pyarrow.parquet as pq
sys.path.insert(0, os.getcwd())
from pipeline.imagehost.pictures import picture_jpeg

folder, total = sys.argv[1], int(sys.argv[2])
data = os.path.join(folder, "data")
if os.path.exists(os.path.join(data, "validation-00000-of-00001.parquet")):
    print(f"packed data already in {folder}"); sys.exit(0)
os.makedirs(data, exist_ok=True)
WNIDS = [f"n{10000000 + 7919 * k:08d}" for k in range(1000)]

def render(i):
    return picture_jpeg(WNIDS[i % 1000], i, 500, 375)

began = time.time()
with Pool(os.cpu_count()) as pool:  # 2048 distinct pictures; rows cycle through them
    blobs = pool.map(render, range(min(2048, total)), chunksize=16)
kind = pa.struct([("bytes", pa.binary()), ("path", pa.string())])

def write(name, rows):
    images = [{"bytes": blobs[i % len(blobs)], "path": f"{i}.jpg"} for i in rows]
    table = pa.table({"image": pa.array(images, kind), "label": pa.array([i % 1000 for i in rows], pa.int64())})
    pq.write_table(table, os.path.join(data, name), row_group_size=256, compression="none")

shards = 4
per = total // shards
for k in range(shards):
    write(f"train-{k:05d}-of-{shards:05d}.parquet", range(k * per, (k + 1) * per))
val = min(1024, total // 4)
write("validation-00000-of-00001.parquet", range(total, total + val))
kb = sum(len(b) for b in blobs) / len(blobs) / 1e3
print(f"packed {total} train + {val} val images ({kb:.0f} KB each) in {time.time() - began:.0f} s")
PYTHON

# -- 2. the model alone
$PY - "$BATCH" "$SIZE" <<'PYTHON' | tee "$OUT/model_only.txt"
import os, sys, time
import torch, torch.nn.functional as F
sys.path.insert(0, os.getcwd())
from baseline.model import alexnet

batch, size = int(sys.argv[1]), int(sys.argv[2])
device = os.environ["DEVICE"]
cuda = device == "cuda"
torch.backends.cudnn.benchmark = True
sync = torch.cuda.synchronize if cuda else (lambda: None)
for compiled in ((False, True) if cuda else (False,)):
    torch.manual_seed(0)
    model = alexnet(1000).to(device, memory_format=torch.channels_last)
    forward = torch.compile(model) if compiled else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, fused=True)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = F.cross_entropy(forward(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(15 if cuda else 2):  # warm-up: cuDNN's algorithm search, compilation
        step()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times, repeat = [], (20 if cuda else 2)
    for _ in range(5 if cuda else 3):
        sync()
        began = time.perf_counter()
        for _ in range(repeat):
            step()
        sync()
        times.append((time.perf_counter() - began) / repeat)
    median = sorted(times)[len(times) // 2]
    memory = f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if cuda else "on the CPU"
    print(f"model only{' (torch.compile)' if compiled else ''}: batch {batch} {'bf16 ' if cuda else ''}{size} px: "
          f"{batch / median:,.0f} images/s ({1e3 * median:.1f} ms a step, {1e3 * min(times):.1f}-{1e3 * max(times):.1f}), "
          f"{memory}")
PYTHON

# -- 3. with data loading, through the trainer
DECODES="cpu gpu"
[ "$DEVICE" = cpu ] && DECODES=cpu
for decode in $DECODES; do
  $PY -m baseline train --packed "$WORK/packed" --out "$OUT/run-$decode" --force --no-progress --device "$DEVICE" \
      --batch "$BATCH" --size "$SIZE" --epochs 1 --max-steps "$STEPS" --lr 0.01 --workers "$WORKERS" \
      --decode "$decode" --stats imagenet 2>&1 | tee "$OUT/run-$decode.log" || echo "decode $decode failed"
done

$PY - "$OUT" <<'PYTHON'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print()
print((out / "model_only.txt").read_text().strip())
for decode in ("cpu", "gpu"):
    path = out / f"run-{decode}" / "metrics.jsonl"
    if not path.exists():
        continue
    row = json.loads(path.read_text().splitlines()[-1])
    memory = f", peak GPU memory {row['gpu_memory_gb']:.2f} GiB" if "gpu_memory_gb" in row else ""
    print(f"with data loading ({decode} decoding): {row['images_per_s']:,.0f} images/s over {row['images']} images "
          f"(first steps included), waiting for data {100 * row['data_wait_share']:.0f}% of the time{memory}")
PYTHON
