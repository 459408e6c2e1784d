#!/usr/bin/env bash
# gpu_check.sh's smoke test on this machine (CPU, small tree): a fresh venv holding only the packages the GPU machine
# has (no open_clip, ftfy, wcwidth, pydantic, dvc or dvclive), a wheel set built for that venv's Python, then
# `DEVICE=cpu bash benchmarks/speed/gpu_check.sh` with PYTHONPATH cleared, so nothing leaks from the project's env.
#
#   bash benchmarks/speed/gpu_check_smoke.sh      # from the repository root; ~1 GB in $WORK, a few minutes
#
# The GPU machine runs CPython 3.12 with torch 2.11; here the venv is BASE_PYTHON (default python3.11) with PyPI's
# torch and torchvision at the project env's versions (TORCH; several GB, as on the GPU machine). A CPU-only torch
# (+cpu) needs the torchvision built for it: PyPI's torchvision links CUDA torch's libraries and fails to load.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/gpu_check_smoke}
BASE_PYTHON=${BASE_PYTHON:-python3.11}
HOST_PY=${HOST_PY:-.venv/bin/python}  # the project's env: resolves the wheel set from its installed metadata
TORCH=${TORCH:-$("$HOST_PY" -c 'import torch, torchvision as tv; print("torch==" + torch.__version__.split("+")[0], "torchvision==" + tv.__version__.split("+")[0])')}
rm -rf "$WORK" && mkdir -p "$WORK"
"$BASE_PYTHON" -m venv "$WORK/venv"
V="$WORK/venv/bin/python"
pyver=$("$V" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
# the GPU machine's packages (gpu_wheels.py PROVIDED); typer 0.16-0.19 needs no pydantic and allows the click >= 8.3.1
# that dvc's celery needs (typer < 0.16 pins click < 8.2: pip then names the conflict and the check stops)
"$V" -m pip install -q --no-cache-dir $TORCH numpy pandas pyarrow scikit-learn scipy safetensors "typer>=0.16,<0.20" \
  matplotlib tqdm pyyaml pillow regex timm huggingface_hub
leak=$("$V" -c '
from importlib.util import find_spec
print(" ".join(m for m in "open_clip ftfy wcwidth pydantic dvc dvclive negprompt".split() if find_spec(m)))')
[ -z "$leak" ] || { echo "error: the bare venv already has $leak"; exit 1; }
"$HOST_PY" benchmarks/speed/gpu_wheels.py --python-version "$pyver" --dest "$WORK/wheels"
env -u PYTHONPATH PYTHON="$V" WHEELS="$WORK/wheels" DEVICE=cpu TREE="$WORK/tree" OUT="$WORK/out" LIMIT_S=${LIMIT_S:-900} \
  TREE_ARGS="--train-per-class 2 --val 50 --ood 10 --textures 47 --width 64 --height 48" \
  RUN_ARGS="--model miniworld-tiny --seeds 1 --shots 1 --calib 1 --pos-epochs 1 --neg-epochs 1 --corpus-words 500 --feature-batch 64 --no-flops --set neglabel.groups=5 --set report.tsne_images=10" \
  bash benchmarks/speed/gpu_check.sh
"$V" - "$WORK/out/imagenet_scale_cpu.json" <<'PYEOF'
import json, sys
stages = json.load(open(sys.argv[1]))["stages"]
bad = {k: v.get("error", v["exit"]) for k, v in stages.items() if v["exit"] and not v.get("refused_as_expected")}
print(f"{len(stages)} stages, failed: {bad or 'none'}")
sys.exit(1 if bad or "train_neg@1" not in stages else 0)
PYEOF
