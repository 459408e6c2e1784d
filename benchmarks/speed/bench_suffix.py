"""The prompt encoder's class-suffix pass, measured side by side in one run, one change at a time.

Every training step runs the k·m class suffixes `<name> . [EOS]` through the text tower against the
cached prefix `[SOS] ctx` (`TextTower.encode_suffix`). Measured here, forward + backward into the
context, median seconds per step, each change on its own and both together:

    padded: every row padded to the longest name through every layer, each row's prefix keys
            gathered by index (the encoder before packing)
    packed: the per-token layers on the tokens up to each EOT only, the prefix keys broadcast
    flash / math kernel: SDPA's default CPU kernel, or PyTorch's math kernel (ours on CPU)

and the largest difference between their text features (they compute the same function).

    python benchmarks/speed/bench_suffix.py                       # the stand-in (shipped weights), k = 200
    python benchmarks/speed/bench_suffix.py --model ViT-B-16 --checkpoint "" --classes 100 1000
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import time
from unittest import mock

import open_clip
import torch
import torch.nn.functional as F
import typer

import negprompt.clip.backbone  # noqa: F401  (registers the stand-in model configs)
from negprompt import commands
from negprompt.benchmarks.imagenet import imagenet_classes
from negprompt.clip import prompts
from negprompt.clip.prompts import PromptEncoder, TextTower, _finish_block, _heads, _merge_heads, _qkv, init_context


def flash_attention(q, k, v, **mask):
    """SDPA with the kernel it picks by default (flash attention on CPU)."""
    return F.scaled_dot_product_attention(q, k, v, **mask)


def padded_encode_suffix(self: TextTower, kv, ctx_index, x, eot):
    """`encode_suffix` before packing: the whole [B, S] grid through every layer, prefix keys gathered by index."""
    P, S = kv[0][0].shape[2], x.shape[1]
    cast = self.transformer.get_cast_dtype()
    x = x.to(cast) + self.positional_embedding[P : P + S].to(cast)
    col = torch.arange(P + S, device=x.device)
    mask = (col[None, :] < P) | (col[None, :] - P <= torch.arange(S, device=x.device)[:, None])
    if ctx_index is None:
        ctx_index = torch.arange(kv[0][0].shape[0], device=x.device).repeat_interleave(len(x) // kv[0][0].shape[0])
    for block, (kp, vp) in zip(self.transformer.resblocks, kv):
        q, k, v = _heads(_qkv(block, block.ln_1(x)), block.attn.num_heads)
        k, v = torch.cat([kp[ctx_index].to(k.dtype), k], dim=2), torch.cat([vp[ctx_index].to(v.dtype), v], dim=2)
        x = _finish_block(block, x, _merge_heads(prompts._attention(q, k, v, attn_mask=mask)))
    return self._pool(x, eot)


PADDED, OURS = "padded, flash kernel", "packed, math kernel (ours)"
VARIANTS = {  # name: (attention used by the prefix and the suffix pass, suffix pass)
    PADDED: (flash_attention, padded_encode_suffix),
    "padded, math kernel": (prompts._attention, padded_encode_suffix),
    "packed, flash kernel": (flash_attention, TextTower.encode_suffix),
    OURS: (prompts._attention, TextTower.encode_suffix),
}


@contextlib.contextmanager
def variant(name: str):
    attention, encode_suffix = VARIANTS[name]
    with (
        mock.patch.object(prompts, "_attention", attention),
        mock.patch.object(TextTower, "encode_suffix", encode_suffix),
    ):
        yield


def median_step(encoder: PromptEncoder, ctx: torch.nn.Parameter, steps: int) -> float:
    def step():
        encoder(ctx).sum().backward()
        ctx.grad = None

    step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(
    model_name: str = typer.Option("openmoji-tiny", "--model", help="open_clip architecture"),
    checkpoint: str = typer.Option("weights/openmoji-tiny.safetensors", help='"" = random init (no download)'),
    classes: list[int] = typer.Option([200], help="k values (ImageNet's first k names): --classes 100 1000"),
    contexts: int = typer.Option(1, help="m contexts (1 = stage 1; p = 2 for stage 2)"),
    steps: int = typer.Option(20, help="timed forward+backward steps (median)"),
    json_out: str = typer.Option("", "--json", help="also write the figures to this file"),
):
    """The prompt encoder's class-suffix pass: padded against packed, flash against math attention."""
    torch.manual_seed(0)
    model = open_clip.create_model(model_name, pretrained=checkpoint or None).eval().requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(model_name)
    ctx0 = init_context(TextTower(model), tokenizer, "a photo of a", 16)
    ctx = torch.nn.Parameter(ctx0.unsqueeze(0).repeat(contexts, 1, 1).clone())
    machine = (
        f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"
    )
    print(f"{model_name}, m = {contexts}, {machine}, median of {steps} forward+backward steps")
    rows = []
    for k in classes:
        names = imagenet_classes().name.tolist()[:k]
        encoder = PromptEncoder(model, tokenizer, names, len(ctx0))
        feats, seconds = {}, {}
        for name in VARIANTS:
            with variant(name):
                with torch.no_grad():
                    feats[name] = encoder(ctx)
                seconds[name] = median_step(encoder, ctx, steps)
        diff = max(float((f - feats[OURS]).abs().max()) for f in feats.values())
        row = {
            "k": k,
            "seconds": seconds,
            "speedup": {n: seconds[PADDED] / s for n, s in seconds.items()},
            "max_abs_feature_diff": diff,
        }
        rows.append(row)
        print(
            f"k = {k}: "
            + " | ".join(f"{n} {1e3 * s:.1f} ms ({seconds[PADDED] / s:.2f}x)" for n, s in seconds.items())
            + f"; features differ by at most {diff:.1e}"
        )
    if json_out:
        with open(json_out, "w") as f:
            json.dump(
                {
                    "model": model_name,
                    "contexts": contexts,
                    "machine": machine,
                    "torch": torch.__version__,
                    "rows": rows,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    commands.run(main)
