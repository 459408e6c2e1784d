"""ViT-B-16 at ImageNet scale without ImageNet or weights: what the real stages cost, stage by stage.

The architecture is what costs time and memory, so `backbone.pretrained: random` (open_clip's
initialisation) and a synthetic tree in ImageNet's layout at ImageNet's counts put every stage
through the path a user with a GPU takes. Its figures are timings; its AUROCs are noise.

    make-tree  ImageNet's layout under ROOT: train/<wnid>/ for the 1,000 wnids (package resource),
               val/ (flat, named as val_labels.txt, when --val is 50,000; else val/<wnid>/), and the
               conventional OOD folders iNaturalist/, SUN/, Places/, dtd/images/<47 textures>/, as
               JPEGs of ImageNet's typical size (500 x 375), written by N worker processes.
    run        the stages of dvc.yaml, in its order (`python -m pipeline.<stage>`, matrix stages once
               per seed), in a scratch copy of the repository with a params override (ViT-B-16 random,
               imagenet_conventional by default); per stage the wall time, peak GPU memory
               (torch.cuda.max_memory_allocated, on CUDA), peak RSS, throughput and estimated FLOP/s;
               written to benchmarks/results/imagenet_scale_<device>.json. Training epochs can be capped
               and extrapolated to the paper's (the JSON says so), and variants (amp, chunk, fp16
               features) rerun the stages they affect, side by side in the same run.

    python benchmarks/speed/imagenet_scale.py make-tree /data/fake-imagenet --workers 16
    python benchmarks/speed/imagenet_scale.py run /data/fake-imagenet --device cuda --pos-epochs 2 --neg-epochs 1 \
        --compare

No dvc is needed (the stages are read from dvc.yaml and run as DVC would), so it runs on a bare GPU machine.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import typer
import yaml

REPO = Path(__file__).resolve().parents[2]
RESOURCES = REPO / "src/negprompt/resources"
OOD_FOLDERS = {"iNaturalist": 10_000, "SUN": 10_000, "Places": 10_000}  # MCM's subsets; + dtd/images (5,640)
COUNTS_FILE = "expected_counts.json"  # the sizes a tree declares (negprompt.benchmarks.inventory.COUNTS_FILE)
DTD_CLASSES = 47  # DTD: 47 texture categories x 120 images = 5,640
PAPER_EPOCHS = {"train_pos": 100, "train_neg": 10}  # the paper's stage-1 and stage-2 epochs
H200_BF16_TFLOPS = 790  # sustained on large matrix products (issue 37); peak of the card the figures are set beside
TRAINING = ("train_pos", "train_neg")

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help=__doc__.split("\n\n")[0])


# --- make-tree ------------------------------------------------------------------------------------


def _write_jpegs(jobs: list[tuple[str, int]], width: int, height: int, quality: int) -> int:
    """JPEGs with ImageNet's size and roughly its entropy: smooth colour fields plus grain (pure noise
    would compress 3x worse and decode slower than photographs)."""
    from PIL import Image

    for path, seed in jobs:
        rng = np.random.default_rng(seed)
        base = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC)
        arr = np.asarray(base, dtype=np.int16) + rng.integers(-12, 13, (height, width, 3), dtype=np.int16)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path, quality=quality)
    return len(jobs)


def tree_files(root: Path, train_per_class: int, val: int, ood: int, textures: int) -> list[Path]:
    """Every file of the tree, in a fixed order (file i gets seed i)."""
    wnids = (RESOURCES / "wnids.txt").read_text().split()
    files = [root / "train" / w / f"{w}_{j}.JPEG" for w in wnids for j in range(train_per_class)]
    if val == 50_000:  # the real flat layout; its labels ship with the package (val_labels.txt)
        names = [line.split()[0] for line in (RESOURCES / "val_labels.txt").read_text().splitlines() if line.strip()]
        files += [root / "val" / n for n in names]
    else:  # flat val/ must hold all 50,000 names; at smaller counts the per-synset layout the reader also takes
        per_class = val_per_class(val)
        files += [root / "val" / wnids[i % 1000] / f"ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(per_class * 1000)]
    for name in OOD_FOLDERS:
        files += [root / name / f"{name.lower()}_{i:05d}.jpg" for i in range(ood)]
    files += [
        root / "dtd/images" / f"texture{i % DTD_CLASSES:02d}" / f"texture{i % DTD_CLASSES:02d}_{i:04d}.jpg"
        for i in range(textures)
    ]
    return files


def val_per_class(val: int) -> int:
    """Val images per synset: `val` rounded down to a multiple of the 1,000 classes, at least one each."""
    return max(1, val // 1000)


def declared_sizes(train_per_class: int, val: int, ood: int, textures: int) -> dict:
    """What the tree holds, in the data stage's `ROOT/expected_counts.json` (negprompt.benchmarks.inventory):
    the stage checks every set's count against these instead of ImageNet's as distributed."""
    return {
        "train_per_class": train_per_class,
        "val_per_class": 50 if val == 50_000 else val_per_class(val),
        **dict.fromkeys(OOD_FOLDERS, ood),
        "dtd/images": textures,
    }


@app.command("make-tree")
def make_tree(
    root: Path,
    train_per_class: int = typer.Option(24, help="train/<wnid>/ images (16 shots + 8 held-out per seed's draw)"),
    val: int = typer.Option(
        50_000, help="val images (50,000: flat, as val_labels.txt; fewer: val/<wnid>/, a multiple of 1,000, >= 1,000)"
    ),
    ood: int = typer.Option(10_000, help="images in each of iNaturalist/, SUN/, Places/"),
    textures: int = typer.Option(5_640, help="images in dtd/images/ (47 categories)"),
    width: int = 500,
    height: int = 375,
    quality: int = 90,
    workers: int = typer.Option(os.cpu_count() or 1, help="worker processes"),
):
    """Write a synthetic tree in ImageNet's layout (files that exist are kept: a killed run resumes), and
    the sizes it holds as ROOT/expected_counts.json, which the data stage checks the sets against."""
    start = time.perf_counter()
    files = tree_files(root, train_per_class, val, ood, textures)
    todo = [(str(f), i) for i, f in enumerate(files) if not f.is_file()]
    per = max(1, math.ceil(len(todo) / (workers * 8)))
    chunks = [todo[i : i + per] for i in range(0, len(todo), per)]
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(workers) as pool:
            written = sum(pool.map(_write_jpegs, chunks, *[[x] * len(chunks) for x in (width, height, quality)]))
    else:
        written = sum(_write_jpegs(c, width, height, quality) for c in chunks)
    (root / COUNTS_FILE).write_text(json.dumps(declared_sizes(train_per_class, val, ood, textures), indent=1) + "\n")
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in files[:: max(1, len(files) // 200)]) / len(files[:: max(1, len(files) // 200)])
    print(
        f"{root}: {len(files):,} files ({written:,} written) in {seconds:.1f} s with {workers} workers, "
        f"~{size / 1024:.0f} KB each"
    )


# --- run ------------------------------------------------------------------------------------------

# Runs one stage module as `python -m` would, and on exit writes its peak GPU memory and RSS.
PROBE = """
import atexit, json, os, resource, runpy, sys
def _dump():
    info = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        info.update(peak_gpu_mb=torch.cuda.max_memory_allocated() / 2**20, gpu=torch.cuda.get_device_name())
    with open(os.environ["SCALE_PROBE_OUT"], "w") as f:
        json.dump(info, f)
atexit.register(_dump)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def dvc_stages(dvc_yaml: Path, seeds: list[int]) -> list[tuple[str, list[str]]]:
    """(stage name, argv after `python -m`) in dvc.yaml's order, matrix stages expanded over the seeds."""
    out = []
    for name, spec in yaml.safe_load(dvc_yaml.read_text())["stages"].items():
        items = seeds if "matrix" in spec else [None]
        for seed in items:
            cmd = spec["cmd"] if seed is None else spec["cmd"].replace("${item.seed}", str(seed))
            argv = cmd.split()
            assert argv[:2] == ["python", "-m"], cmd
            out.append((name if seed is None else f"{name}@{seed}", argv[2:]))
    return out


def set_key(params: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    node = params
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value


def parse_sets(items: list[str]) -> dict:
    """key=value pairs (values parsed as YAML, as `dvc exp run -S` does)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r}: expected key=value")
        out[key.strip()] = yaml.safe_load(value)
    return out


def count_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows if path.is_file() else 0


def model_flops(model_name: str) -> dict:
    """FLOPs of one image forward (224 px) and one 77-token prompt forward, counted by torch on CPU."""
    import open_clip
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import negprompt.clip.backbone  # noqa: F401  (registers the project's tiny architectures)

    model = open_clip.create_model(model_name, device="cpu").eval()
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    with torch.no_grad():
        with FlopCounterMode(display=False) as image:
            model.encode_image(torch.zeros(1, 3, size, size))
        with FlopCounterMode(display=False) as text:
            model.encode_text(open_clip.get_tokenizer(model_name)(["a photo of a dog."]))
    return {"image": image.get_total_flops(), "prompt": text.get_total_flops(), "image_size": size}


def throughput(stage: str, seconds: float, work: Path, params: dict, flops: dict | None) -> dict:
    """Images/s for features; steps/s and estimated FLOP/s for the training stages (forward + backward
    ~ 3 forwards of every trained prompt per step, counted at the full 77 tokens; the prompt learner
    truncates at the longest prompt's end token, so the training figures over-count; per-epoch
    evaluation and start-up are in the seconds, so every rate here is a lower bound of the kernels')."""
    name, _, seed = stage.partition("@")
    out = {}
    if name == "features":
        n = count_rows(work / "features/train.parquet") + count_rows(work / "features/test.parquet")
        out = {"images": n, "images_per_s": n / seconds}
        if flops:
            out["tflops_per_s_estimate"] = n * flops["image"] / seconds / 1e12
    elif name in TRAINING and seed:
        import pandas as pd

        subset = pd.read_parquet(work / f"data/subsets/seed{seed}.parquet")
        classes = subset.label.nunique()
        if params.get("open_vocab"):
            classes = max(1, int(classes * params["subset"]["open_vocab_fraction"]))
            subset = subset[subset.label < classes]
        sec = params["pos" if name == "train_pos" else "neg"]
        n_train = int((subset.split == "train").sum()) * params["features"]["train_views"]
        steps = sec["epochs"] * math.ceil(n_train / sec["batch_size"])
        prompts = classes * (1 if name == "train_pos" else 1 + params["neg"]["num_prompts"])
        out = {"steps": steps, "steps_per_s": steps / seconds, "prompts_per_step": prompts}
        if flops:
            out["tflops_per_s_estimate"] = 3 * prompts * flops["prompt"] * steps / seconds / 1e12
    return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in out.items()}


def run_stage(stage: str, argv: list[str], work: Path, env: dict, log) -> dict:
    probe = work / f".probe_{stage.replace('@', '_')}.json"
    start = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=work,
        env={**env, "SCALE_PROBE_OUT": str(probe)},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    log.write(f"### {stage}: exit {res.returncode} in {seconds:.1f} s\n{res.stdout[-4000:]}{res.stderr[-4000:]}\n")
    log.flush()
    row = {"seconds": round(seconds, 2), "exit": res.returncode}
    if probe.is_file():
        row.update({k: round(v, 1) if isinstance(v, float) else v for k, v in json.loads(probe.read_text()).items()})
    if res.returncode:
        errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
        row["error"] = errors[-1] if errors else (res.stderr.strip().splitlines() or ["(no output)"])[-1]
    return row


def scratch_copy(work: Path) -> None:
    """The tracked pipeline files, as tests/helpers.py's make_repo copies them (no outputs, no lock)."""
    for rel in ("dvc.yaml", "pipeline", "src"):
        src = REPO / rel
        if src.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(src, work / rel, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy(src, work / rel)


def compare_variants(device: str) -> dict:
    """The memory and speed options side by side: mixed precision, prompt chunking, fp16 image features."""
    variants = {
        "amp": {"pos.amp": True, "neg.amp": True},
        "chunk250": {"pos.chunk": 250, "neg.chunk": 250},
        "chunk500": {"pos.chunk": 500, "neg.chunk": 500},
    }
    if device.startswith("cuda"):
        variants["features_float16"] = {"features.dtype": "float16"}
    return variants


def affected(keys: list[str]) -> str:
    """The first stage a variant's keys change (it and the stages after it are rerun)."""
    if any(k.startswith("features.") for k in keys):
        return "features"
    if any(k.startswith(("pos.", "locoop.")) for k in keys):
        return "train_pos"
    return "train_neg"


@app.command()
def run(
    root: Path = typer.Argument(..., help="a tree from make-tree (or a real ImageNet root)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    model: str = "ViT-B-16",
    benchmark: str = "imagenet_conventional",
    hard_split: str = "split1",
    seeds: str = typer.Option("1,2,3", help="comma-separated subset seeds"),
    shots: int = 16,
    calib: int = typer.Option(8, help="subset.calib_per_class"),
    pos_epochs: int = typer.Option(PAPER_EPOCHS["train_pos"], help="run this many; extrapolated to --paper-pos-epochs"),
    neg_epochs: int = typer.Option(PAPER_EPOCHS["train_neg"], help="run this many; extrapolated to --paper-neg-epochs"),
    paper_pos_epochs: int = PAPER_EPOCHS["train_pos"],
    paper_neg_epochs: int = PAPER_EPOCHS["train_neg"],
    paper_shots: int = typer.Option(16, help="extrapolate training steps to this many shots per class"),
    amp: bool = False,
    chunk: int = 0,
    features_dtype: str = "float32",
    feature_batch: int = 256,
    num_workers: int = typer.Option(min(8, os.cpu_count() or 1), help="features.num_workers (JPEG decoding)"),
    local: bool = typer.Option(False, help="features.local (patch features for GL-MCM and LoCoOp)"),
    corpus_words: int = typer.Option(70_000, help="NegLabel corpus size (a generated word list; WordNet has ~70k)"),
    wordnet_dir: str = typer.Option("", help="use NLTK's WordNet from here instead of generated words"),
    compare: bool = typer.Option(False, help="also run amp, chunk 250/500 and (CUDA) fp16-feature variants"),
    variant: list[str] = typer.Option([], help="NAME:key=value,key=value (repeatable): one more side-by-side variant"),
    variant_seed_only: bool = typer.Option(True, help="variants rerun the first seed only"),
    set_: list[str] = typer.Option([], "--set", help="key=value params override (repeatable), applied last"),
    skip: list[str] = typer.Option([], help="stage names not to run (e.g. report)"),
    work: Path = typer.Option(None, help="scratch repository (default: a temporary folder, removed)"),
    out: Path = typer.Option(None, help="JSON path (default benchmarks/results/imagenet_scale_<device>.json)"),
    flops: bool = typer.Option(True, help="count the model's FLOPs once on CPU for FLOP/s estimates"),
):
    """Run the real stages on ROOT with a random-weight backbone, timing each; write the JSON."""
    import torch

    dev = "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    gpu = torch.cuda.get_device_name() if dev.startswith("cuda") else ""
    label = re.sub(r"[^a-z0-9]+", "", gpu.lower().replace("nvidia", "")) or "cpu"
    label = next((k for k in ("h200", "h100", "a100", "l40s", "a10") if k in label), label)
    out = out or REPO / f"benchmarks/results/imagenet_scale_{label}.json"
    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    own_work = work is None
    work = Path(tempfile.mkdtemp(prefix="imagenet_scale_")) if own_work else work
    work.mkdir(parents=True, exist_ok=True)
    scratch_copy(work)

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    corpus = ""
    if not wordnet_dir:
        corpus = str(work / "corpus.txt")
        Path(corpus).write_text("\n".join(f"synthword{i:05d}" for i in range(corpus_words)) + "\n")
    overrides = {
        "data.benchmark": benchmark,
        "data.root": str(root.resolve()),
        "data.hard_split": hard_split,
        "backbone.model": model,
        "backbone.pretrained": "random",
        "backbone.device": dev,
        "subset.seeds": seed_list,
        "subset.shots": shots,
        "subset.calib_per_class": calib,
        "features.device": dev,
        "features.dtype": features_dtype,
        "features.batch_size": feature_batch,
        "features.num_workers": num_workers,
        "features.local": local,
        "pos.epochs": pos_epochs,
        "pos.device": dev,
        "pos.amp": amp,
        "pos.chunk": chunk,
        "neg.epochs": neg_epochs,
        "neg.device": dev,
        "neg.amp": amp,
        "neg.chunk": chunk,
        "neglabel.corpus": corpus,
        "neglabel.wordnet_dir": wordnet_dir,
        # InterNeg's inter-modal test keeps no synthetic word on random weights (it needs a trained CLIP, and stops
        # the score stage when nothing passes); --set family.methods=[...] puts it back
        "family.methods": ["csp", "adaneg", "tanl"],
        **parse_sets(set_),
    }
    for key, value in overrides.items():
        set_key(params, key, value)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(work), str(work / "src")])}

    counted = model_flops(model) if flops else None
    result = {
        "what": "the real stages (python -m pipeline.<stage>, dvc.yaml order), random weights: timings, not results",
        "device": gpu or f"cpu ({os.cpu_count()} cores, {platform.machine()})",
        "threads": int(os.environ.get("NEGPROMPT_THREADS", os.cpu_count() or 1)),
        "root": str(root),
        "overrides": {k: v for k, v in overrides.items() if k != "neglabel.corpus"},
        "corpus": f"{corpus_words} generated words" if corpus else f"WordNet from {wordnet_dir}",
        "flops_per_image": counted and counted["image"],
        "flops_per_prompt_77_tokens": counted and counted["prompt"],
        "peak_reference_tflops": {"h200_bf16_sustained": H200_BF16_TFLOPS},
        "stages": {},
        "variants": {},
    }
    manifest_counts = {}
    stages = [(n, a) for n, a in dvc_stages(work / "dvc.yaml", seed_list) if n.partition("@")[0] not in skip]
    log_path = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        failed = False
        for name, argv in stages:
            row = run_stage(name, argv, work, env, log)
            if name == "export":  # must refuse a random backbone: the refusal is the expected outcome
                row["refused_as_expected"] = row["exit"] == 2 and "random weights" in row.get("error", "")
            elif row["exit"]:
                failed = True
            else:
                row.update(throughput(name, row["seconds"], work, params, counted))
            result["stages"][name] = row
            print(
                f"{name:14s} {row['seconds']:8.1f} s  exit {row['exit']}  "
                f"{row.get('peak_gpu_mb', '-')} MB GPU  {row.get('error', '')}",
                flush=True,
            )
            if name == "data" and not row["exit"]:
                manifest_counts = json.loads((work / "data/benchmark/manifest.json").read_text())["counts"]
                result["counts"] = manifest_counts
            out.write_text(json.dumps(result, indent=1) + "\n")  # so far: a run killed by a time limit leaves this
            if failed:
                break
        result["failed"] = failed
        if not failed:
            result["extrapolated"] = extrapolate(
                result["stages"], params, paper_pos_epochs, paper_neg_epochs, paper_shots
            )
            variants = compare_variants(dev) if compare else {}
            for spec in variant:
                vname, _, kvs = spec.partition(":")
                variants[vname] = parse_sets([kv for kv in kvs.split(",") if kv])
            for vname, keys in variants.items():
                result["variants"][vname] = run_variant(
                    vname, keys, params, work, env, log, seed_list, variant_seed_only, counted
                )
    result["log"] = str(log_path.relative_to(REPO)) if log_path.is_relative_to(REPO) else str(log_path)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    if own_work:
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        raise typer.Exit(1)


def extrapolate(stages: dict, params: dict, paper_pos: int, paper_neg: int, paper_shots: int) -> dict:
    """Training stages scaled linearly in steps to the paper's epochs and shots (start-up included: an
    over-estimate), summed with the other stages as run: the projected wall time of the whole pipeline.
    Only the training stages are scaled: the features stage's cost grows with the shots too (few-shot
    images are a fifth of ImageNet's encoded images at 16 shots), so rerun make-tree/run at 16 shots for it."""
    ran = {"train_pos": params["pos"]["epochs"], "train_neg": params["neg"]["epochs"]}
    paper = {"train_pos": paper_pos, "train_neg": paper_neg}
    shots = params["subset"]["shots"]
    total, rows = 0.0, {}
    for name, row in stages.items():
        base = name.partition("@")[0]
        factor = paper[base] / ran[base] * paper_shots / shots if base in ran else 1.0
        seconds = row["seconds"] * factor
        if base in ran:
            rows[name] = {
                "ran_epochs": ran[base],
                "paper_epochs": paper[base],
                "ran_shots": shots,
                "paper_shots": paper_shots,
                "seconds": round(seconds, 1),
                "measured": factor == 1.0,
            }
        total += seconds
    return {
        "method": "linear in steps (epochs x shots) from those run; start-up and per-epoch evaluation included",
        "stages": rows,
        "pipeline_seconds": round(total, 1),
    }


def run_variant(
    vname: str, keys: dict, base: dict, work: Path, env: dict, log, seeds: list[int], first_only: bool, counted
) -> dict:
    """Rerun the stages `keys` affect (from `affected` to score) with them set, then restore the params."""
    params = json.loads(json.dumps(base))
    for k, v in keys.items():
        set_key(params, k, v)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    first = affected(list(keys))
    order = ["features", "train_pos", "train_neg", "score"]
    names = order[order.index(first) :]
    rows = {"params": keys}
    for name, argv in dvc_stages(work / "dvc.yaml", seeds[:1] if first_only else seeds):
        if name.partition("@")[0] in names:
            row = run_stage(f"{vname}.{name}", argv, work, env, log)
            if not row["exit"]:
                row.update(throughput(name, row["seconds"], work, params, counted))
            rows[name] = row
            print(
                f"[{vname}] {name:14s} {row['seconds']:8.1f} s  exit {row['exit']}  "
                f"{row.get('peak_gpu_mb', '-')} MB GPU",
                flush=True,
            )
            if row["exit"]:
                break
    (work / "params.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    return rows


if __name__ == "__main__":
    app()
