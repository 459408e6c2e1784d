"""Stage-2 training step, measured side by side in one run: the reference style vs ours.

reference: image encoder on a batch of images + text encoder over all k(1+p) prompts at the full
           context length (77) + loss + backward into the contexts (what the official code does)
ours:      cached image features + EOT-truncated prompts, only the k·p negative prompts through the
           text encoder (positive features computed once: they are frozen) + the same loss + backward;
           the causal prefix [SOS] ctx run once per context (shared prefix). `ours_no_prefix_*` is
           the same step running every (context, class) sequence in full, measured in the same run.

    --stage pos times stage 1 (CoOp: cross-entropy through the k positive prompts) the same way.

    python benchmarks/speed/bench_step.py --model ViT-B-16 --classes 100 --prompts 2 --batch 64
        [--device cpu|cuda] [--json]

--ladder K adds, for k = K, each optimisation switched on one at a time (before/after, same run).
Peak memory: CUDA max allocated above the start on GPU; on CPU the sampled RSS above the start
during one extra step run with glibc told to return every free above 64 KiB to the OS (so RSS
follows live tensors). Timed steps run with glibc's usual 32 MiB threshold (unmapping every
block costs page faults that would distort the times).
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import platform
import statistics
import sys
import threading
import time
from enum import Enum

import open_clip
import psutil
import torch
import torch.nn.functional as F
import typer

import negprompt.clip.backbone  # noqa: F401  (registers the mini-world model config)
from negprompt import commands
from negprompt.benchmarks.imagenet import imagenet_classes
from negprompt.clip.prompts import PromptEncoder, TextTower, init_context
from negprompt.methods.train import stage2_loss


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class RssPeak:
    """Peak resident memory above the starting point, sampled every 2 ms in a thread (CPU runs)."""

    def __enter__(self):
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self):
        while not self.stop.wait(0.002):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.mb = (self.peak - self.base) / 2**20


class FullLengthPrompts(PromptEncoder):
    """The reference: the same prompts at the full 77-token context, as the official code runs them."""

    def __init__(self, model, tokenizer, classnames, n_ctx):
        super().__init__(model, tokenizer, classnames, n_ctx, shared_prefix=False)
        ctx_len = self.tower.positional_embedding.shape[0]
        pad = self.tower.embed_tokens(torch.zeros(1, 1, dtype=torch.long, device=self.prefix.device)).float()
        extra = ctx_len - (1 + n_ctx + self.suffix.shape[1])
        self.suffix = torch.cat([self.suffix, pad.expand(self.suffix.shape[0], extra, -1)], dim=1)


def mmap_threshold(nbytes: int) -> None:
    """glibc mallopt(M_MMAP_THRESHOLD): blocks above it are mmapped and unmapped on free; then
    malloc_trim hands the free heap back, so the next step's RSS growth is its own."""
    if platform.system() == "Linux":
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-3, nbytes)
            libc.malloc_trim(0)
        except OSError:
            pass


def median_seconds(fn, device, steps: int, warmup: int = 1) -> float:
    """Median wall seconds of `steps` calls after `warmup` untimed ones (device synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(fn, device, steps: int, warmup: int = 1) -> tuple[float, float]:
    """Median seconds per call after warm-up, and peak memory above the start of one more call
    (CUDA max allocated, or sampled RSS on CPU)."""
    seconds = median_seconds(fn, device, steps, warmup)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        mmap_threshold(64 * 1024)
        with RssPeak() as rss:
            fn()
        mmap_threshold(32 * 2**20)
        peak = rss.mb
    return seconds, peak


def text_flops(prefix: int, lengths: list[int], contexts: int, width: int, layers: int, shared: bool) -> float:
    """Forward FLOPs of the text transformer for `contexts` contexts × len(lengths) classes, each
    sequence `prefix` + its class's length long (as in length-sorted chunks): per layer and token
    24·w² (q, k, v, out and the 4w MLP) plus 4·w per attended position. With `shared` the prefix
    is computed once per context and each class token attends to prefix + its own causal part."""
    per_token = 24 * width * width
    if shared:
        pre = contexts * sum(per_token + 4 * width * (i + 1) for i in range(prefix))
        rest = contexts * sum(per_token + 4 * width * (prefix + i + 1) for s in lengths for i in range(s))
        return layers * (pre + rest)
    return layers * contexts * sum(per_token + 4 * width * (i + 1) for s in lengths for i in range(prefix + s))


def run_config(
    model,
    tokenizer,
    k: int,
    p: int,
    batch: int,
    device,
    steps: int,
    amp: bool,
    warmup: int = 1,
    ladder: bool = False,
    with_reference: bool = True,
    chunk: int = 0,
    n_ctx: int = 4,
    stage: str = "neg",
):
    names = imagenet_classes().name.tolist()[:k]
    image_size = model.visual.image_size if isinstance(model.visual.image_size, int) else model.visual.image_size[0]
    tower = TextTower(model)
    ctx0 = (
        init_context(tower, tokenizer, "a photo of a", 16)
        if n_ctx == 4
        else init_context(tower, tokenizer, "", n_ctx, torch.Generator().manual_seed(0))
    ).to(device)
    neg_ctx = torch.nn.Parameter(ctx0.unsqueeze(0).repeat(p, 1, 1).clone())
    pos_ctx = ctx0.clone()
    labels = torch.randint(k, (batch,), device=device)
    images = torch.randn(batch, 3, image_size, image_size, device=device)
    scale = model.logit_scale.exp().item()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16 if device.type == "cpu" else torch.float16, enabled=amp)

    full = FullLengthPrompts(model, tokenizer, names, len(ctx0))
    ours_enc = PromptEncoder(model, tokenizer, names, len(ctx0))
    no_prefix_enc = PromptEncoder(model, tokenizer, names, len(ctx0), shared_prefix=False)
    with torch.no_grad():
        cached = F.normalize(model.encode_image(images).float(), dim=-1)
        pos_feats = ours_enc(pos_ctx)

    def step(encoder, image_feats, all_prompts: bool, chunk: int = 0):
        """One stage-2 step: `image_feats()`, the positive and negative prompt features (all k(1+p)
        through `encoder` every step, or the k·p negatives beside the frozen positives), loss, backward."""

        def fn():
            with autocast:
                feats = image_feats()
                if all_prompts:
                    both = encoder(torch.cat([pos_ctx.unsqueeze(0), neg_ctx]), chunk=chunk)  # [1+p, k, d]
                    pos, neg = both[0], both[1:]
                else:
                    pos, neg = pos_feats, encoder(neg_ctx, chunk=chunk)
                loss = stage2_loss("official", feats, labels, pos, neg.transpose(0, 1), scale, 0.1, 0.05)
            loss.backward()
            neg_ctx.grad = None

        return fn

    pos_param = torch.nn.Parameter(pos_ctx.clone())

    def stage1(encoder, image_feats, chunk: int = 0):
        """One CoOp step: image features, the k positive prompts through `encoder`, cross-entropy, backward."""

        def fn():
            with autocast:
                logits = scale * image_feats() @ encoder(pos_param, chunk=chunk).T
                loss = F.cross_entropy(logits.float(), labels)
            loss.backward()
            pos_param.grad = None

        return fn

    make = step if stage == "neg" else (lambda enc, feats, _all, c=0: stage1(enc, feats, c))
    reference = make(full, lambda: F.normalize(model.encode_image(images).float(), dim=-1), True)
    ours = make(ours_enc, lambda: cached, False, chunk)
    no_prefix = make(no_prefix_enc, lambda: cached, False, chunk)
    if ladder:  # the reference step with our optimisations added one at a time
        ladder_chunk = max(1, k * p // 4)
        tokens = full.prefix.shape[1] + len(pos_ctx) + full.suffix.shape[1]
        variants = [
            (f"reference: images + all k(1+p) prompts at {tokens} tokens", reference),
            ("+ cached image features", step(full, lambda: cached, True)),
            ("+ EOT truncation", step(ours_enc, lambda: cached, True)),
            ("+ positive features once (= ours)", step(ours_enc, lambda: cached, False)),
            (
                f"+ chunks of {ladder_chunk}, length-sorted, checkpointed",
                step(ours_enc, lambda: cached, False, ladder_chunk),
            ),
        ]
        rows = []
        for name, fn in variants:
            s, mb = measure(fn, device, steps, warmup)
            rows.append({"variant": name, "k": k, "p": p, "batch": batch, "s": round(s, 4), "peak_mb": round(mb, 1)})
            print(f"  {name}: {s:.3f} s, {mb:.0f} MB", file=sys.stderr, flush=True)
        return rows
    o_s, o_mb = measure(ours, device, steps, warmup)
    n_s, n_mb = measure(no_prefix, device, steps, warmup)
    r_s, r_mb = measure(reference, device, steps, warmup) if with_reference else (None, None)
    contexts = p if stage == "neg" else 1
    suffix_lengths = (ours_enc.eot + 1 - (1 + len(ctx0))).tolist()
    if not chunk:  # one batch: every prompt is cut to the longest
        suffix_lengths = [max(suffix_lengths)] * len(suffix_lengths)
    flops = [
        text_flops(1 + len(ctx0), suffix_lengths, contexts, tower.width, len(tower.transformer.resblocks), shared)
        for shared in (False, True)
    ]
    return {
        "stage": stage,
        "k": k,
        "p": p,
        "n_ctx": len(ctx0),
        "batch": batch,
        "ours_s": round(o_s, 4),
        "ours_no_prefix_s": round(n_s, 4),
        "prefix_speedup": round(n_s / o_s, 2),
        "prefix_flop_ratio": round(flops[0] / flops[1], 2),
        "ours_no_prefix_peak_mb": round(n_mb, 1),
        "reference_s": r_s and round(r_s, 4),
        "ratio": r_s and round(r_s / o_s, 2),
        "ours_peak_mb": round(o_mb, 1),
        "reference_peak_mb": r_mb and round(r_mb, 1),
        "ours_chunk": chunk,
        "ours_tokens": int(1 + len(ctx0) + ours_enc.suffix.shape[1]),
        "reference_tokens": int(tower.positional_embedding.shape[0]),
    }


class Stage(str, Enum):
    neg = "neg"
    pos = "pos"


def main(
    model_name: str = typer.Option("ViT-B-16", "--model", help="open_clip architecture (random weights)"),
    classes: list[int] | None = typer.Option(
        None, help="k values: --classes 10 100 (default: 10 100 on CPU, 10 100 1000 on GPU)"
    ),
    prompts: int = typer.Option(2, help="negative prompts per class (p)"),
    batch: int = typer.Option(64, help="images per step"),
    steps: int = typer.Option(3, help="timed steps per configuration (median is reported)"),
    warmup: int = typer.Option(1, help="untimed steps before timing"),
    device_name: str = typer.Option("cuda" if torch.cuda.is_available() else "cpu", "--device"),
    amp: bool = typer.Option(False, "--amp", help="mixed precision (bf16 on CPU, fp16 on CUDA) for both"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON line instead of the table"),
    plot: str = typer.Option("", help="write a scaling plot (PNG) of time and memory against k"),
    chunk: int = typer.Option(0, help="ours: encode at most this many prompts at once (length-sorted, checkpointed)"),
    reference_max_k: int = typer.Option(10**9, help="time only ours above this k (the reference takes too long)"),
    plot_from: list[str] = typer.Option([], help="also plot the rows of these earlier --json outputs (alone: plot)"),
    ladder: int = typer.Option(0, metavar="K", help="also measure each optimisation on its own at k = K"),
    n_ctx: int = typer.Option(4, help="context tokens: 4 = 'a photo of a' (default), other = random init (CoOp's 16)"),
    stage: Stage = typer.Option(Stage.neg, help="stage-2 step (default) or stage-1 CoOp step"),
):
    """One training step, ours against the official code's style, side by side in one run."""
    stage = stage.value
    device = torch.device(device_name)
    if plot_from and classes is None:  # only redraw the plot from earlier --json outputs
        runs = [json.loads(open(f).read().strip().splitlines()[-1]) for f in plot_from]
        rows = sorted((r for run in runs for r in run["rows"]), key=lambda r: r["k"])
        plot_scaling(rows, f"{runs[0]['model']}, {runs[0]['device']}", plot or "scaling.png")
        return
    mmap_threshold(32 * 2**20)
    ks = classes or ([10, 100, 1000] if device.type == "cuda" else [10, 100])
    torch.manual_seed(0)
    model = open_clip.create_model(model_name, device=device).eval().requires_grad_(False)  # random init: no download
    tokenizer = open_clip.get_tokenizer(model_name)
    rows = [
        run_config(
            model,
            tokenizer,
            k,
            prompts,
            batch,
            device,
            steps,
            amp,
            warmup,
            with_reference=k <= reference_max_k,
            chunk=chunk,
            n_ctx=n_ctx,
            stage=stage,
        )
        for k in ks
    ]
    info = {
        "model": model_name,
        "device": torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})",
        "threads": torch.get_num_threads(),
        "amp": amp,
        "rows": rows,
    }
    if ladder:
        info["ladder"] = run_config(
            model,
            tokenizer,
            ladder,
            prompts,
            batch,
            device,
            steps,
            amp,
            warmup,
            ladder=True,
        )
    if as_json:
        print(json.dumps(info))
    else:
        print(
            f"{model_name} on {info['device']}, stage {stage}, p = {prompts}, n_ctx {n_ctx}, "
            f"batch {batch}, "
            f"median of {steps} steps after warm-up"
        )
        print(
            f"{'k':>6} {'p':>3} {'batch':>5} {'ours s':>9} {'no-prefix s':>11} {'x (FLOPs)':>12} "
            f"{'ref s':>9} {'ratio':>7} {'ours MB':>9} {'ref MB':>9} {'tokens':>9}"
        )
        for r in rows:
            ref = f"{r['reference_s']:>9.4f} {r['ratio']:>6.1f}x" if r["reference_s"] else f"{'-':>9} {'-':>7}"
            ref_mb = f"{r['reference_peak_mb']:>9.1f}" if r["reference_peak_mb"] is not None else f"{'-':>9}"
            print(
                f"{r['k']:>6} {r['p']:>3} {r['batch']:>5} {r['ours_s']:>9.4f} {r['ours_no_prefix_s']:>11.4f} "
                f"{r['prefix_speedup']:>5.2f} ({r['prefix_flop_ratio']:.2f}) {ref} {r['ours_peak_mb']:>9.1f} {ref_mb} "
                f"{r['ours_tokens']:>4}/{r['reference_tokens']}"
            )
        for r in info.get("ladder", []):
            print(f"k={r['k']:<5} {r['variant']:<52} {r['s']:>9.4f} s {r['peak_mb']:>9.1f} MB")
    if plot:
        for f in plot_from:
            rows = rows + [
                r
                for r in json.loads(open(f).read().strip().splitlines()[-1])["rows"]
                if r["k"] not in {x["k"] for x in rows}
            ]
        plot_scaling(sorted(rows, key=lambda r: r["k"]), f"{model_name}, {info['device']}", plot)


def plot_scaling(rows: list[dict], title: str, path: str) -> None:
    """Time per step and peak memory against k, one line per implementation (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    chunks = sorted({r.get("ours_chunk", 0) for r in rows if r.get("ours_chunk")})
    series = [
        ("reference", "reference style", lambda r: not r.get("ours_chunk")),
        ("ours", "ours", lambda r: not r.get("ours_chunk")),
    ]
    series += [("ours", f"ours, chunks of {c}", lambda r, c=c: r.get("ours_chunk") == c) for c in chunks]
    for key, label, keep in series:
        pts = [r for r in rows if keep(r) and r[f"{key}_s"] is not None]
        a.loglog([r["k"] for r in pts], [r[f"{key}_s"] for r in pts], "o-", label=label)
        b.loglog([r["k"] for r in pts], [max(r[f"{key}_peak_mb"], 1) for r in pts], "o-", label=label)
    a.set(xlabel="classes k", ylabel="s / step", title=f"stage-2 step: {title}")
    b.set(xlabel="classes k", ylabel="peak MB above start", title="peak memory")
    a.title.set_fontsize(8)
    a.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    commands.run(main)
