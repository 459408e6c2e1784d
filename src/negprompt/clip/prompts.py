"""The prompt learner over open_clip's own text tower (CoOp, "class token at the end").

A prompt is `[SOS] ctx_1..ctx_n <class-name tokens> . [EOS]`: the n context vectors replace the
word embeddings of n placeholder tokens and are the only thing learned. Everything else is the
model's: token and positional embeddings, the transformer with its causal mask, `ln_final`, EOT
pooling and `text_projection`. Because the mask is causal and the feature is read at the EOT,
every batch is cut to its longest EOT + 1 tokens: the features are unchanged, the cost drops
from 77 tokens to ~10 on ImageNet names.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

from negprompt import NegPromptError


class TextTower:
    """A view of the text encoder of an open_clip CLIP (ViT or ResNet image tower) or CustomTextCLIP."""

    def __init__(self, model: nn.Module):
        t = model.text if hasattr(model, "text") else model
        if getattr(t, "cls_emb", None) is not None or not hasattr(t, "token_embedding"):
            raise NegPromptError(
                f"{type(model).__name__}: text tower without token embeddings/EOT pooling "
                "(e.g. CoCa, HF text) is not supported"
            )
        self.token_embedding = t.token_embedding
        self.positional_embedding = t.positional_embedding
        self.transformer = t.transformer
        self.ln_final = t.ln_final
        self.text_projection = t.text_projection
        self.attn_mask = t.attn_mask
        self.pool_type = getattr(t, "text_pool_type", getattr(t, "pool_type", "argmax"))
        self.eos_id = getattr(t, "text_eos_id", getattr(t, "eos_id", None))
        if self.pool_type not in ("argmax", "eos"):
            raise NegPromptError(f"text pooling {self.pool_type!r} is not EOT pooling; prompts cannot be truncated")

    def freeze(self) -> None:
        """CLIP stays frozen: only the prompt contexts learn."""
        for module in (self.token_embedding, self.transformer, self.ln_final):
            module.requires_grad_(False)
        for param in (self.positional_embedding, self.text_projection):
            if param is not None:
                param.requires_grad_(False)

    @property
    def width(self) -> int:
        return self.token_embedding.weight.shape[1]

    def eot_index(self, tokens: torch.Tensor) -> torch.Tensor:
        """Position of the pooled (EOT) token per row, as open_clip's `text_global_pool` finds it."""
        if self.pool_type == "argmax":
            return tokens.argmax(dim=-1)
        return (tokens == self.eos_id).int().argmax(dim=-1)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(tokens)

    def encode_embeddings(self, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        """Unnormalised text features from word embeddings `x` [N, L, w] (L may be < context length)."""
        L = x.shape[1]
        cast = self.transformer.get_cast_dtype()
        x = x.to(cast) + self.positional_embedding[:L].to(cast)
        mask = self.attn_mask[:L, :L] if self.attn_mask is not None else None
        return self._pool(self.transformer(x, attn_mask=mask), eot)

    def supports_shared_prefix(self) -> bool:
        """The shared-prefix path recomputes open_clip's standard text block (pre-norm, nn.MultiheadAttention,
        causal mask, batch-first) from its weights; other blocks take the full path."""
        blocks = list(self.transformer.resblocks)
        return (
            self.attn_mask is not None
            and getattr(self.transformer, "batch_first", False)
            and all(
                isinstance(getattr(b, "attn", None), nn.MultiheadAttention)
                and not hasattr(b, "ln_1_kv")
                and b.attn.in_proj_weight is not None
                and b.attn.batch_first
                for b in blocks
            )
        )

    def prefix_kv(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Run the class-independent prefix `[SOS] ctx` [m, P, w] through every layer once and return
        each layer's keys and values [m, heads, P, head_dim]. The mask is causal, so these states
        never depend on the class name that follows."""
        P = x.shape[1]
        x = x.to(self.transformer.get_cast_dtype()) + self.positional_embedding[:P].to(
            self.transformer.get_cast_dtype()
        )
        kv = []
        for block in self.transformer.resblocks:
            q, k, v = _heads(_qkv(block, block.ln_1(x)), block.attn.num_heads)
            kv.append((k, v))
            x = _finish_block(block, x, _merge_heads(_attention(q, k, v, is_causal=True)))
        return kv

    def encode_suffix(
        self,
        kv: list[tuple[torch.Tensor, torch.Tensor]],
        ctx_index: torch.Tensor | None,
        x: torch.Tensor,
        eot: torch.Tensor,
        prefix_len: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Unnormalised features of prompts whose first P positions are a cached prefix: `x` [B, S, w]
        holds the word embeddings of the class-specific rest (name, '.', EOT, ...), `ctx_index` [B]
        which prefix each row continues (None: the m prefixes in order, k rows each), `eot` [B] the
        EOT position within `x`. Each position attends to the whole prefix and causally to the rest,
        exactly as in the full sequence. Only the tokens up to each row's EOT are computed: the
        per-token layers run on them packed [T, w], attention on the padded [B, S] grid.
        `prefix_len` [B] (each <= P): prefixes of several lengths, padded to P; row b continues the first
        prefix_len[b] positions of its prefix (InterNeg's templates put the pseudo-token at different places)."""
        P, S = kv[0][0].shape[2], x.shape[1]
        cast = self.transformer.get_cast_dtype()
        col, row = torch.arange(P + S, device=x.device), torch.arange(S, device=x.device)
        if prefix_len is None:
            x = x.to(cast) + self.positional_embedding[P : P + S].to(cast)
            mask = (col[None, :] < P) | (col[None, :] - P <= row[:, None])  # [S, P+S]
        else:
            x = x.to(cast) + self.positional_embedding[prefix_len[:, None] + row].to(cast)
            prefix_keys = col[None, None, :] < prefix_len[:, None, None]
            mask = (prefix_keys | ((col >= P) & (col - P <= row[:, None]))).unsqueeze(1)  # [B, 1, S, P+S]
        B = x.shape[0]
        valid = (torch.arange(S, device=x.device)[None, :] <= eot[:, None]).flatten()  # [B*S]: up to each row's EOT
        at = valid.nonzero().squeeze(1)  # the packed tokens' places on the [B, S] grid
        tokens = x.flatten(0, 1).index_select(0, at)  # [T, w]; causal, so what follows an EOT never reaches its feature
        for block, (kp, vp) in zip(self.transformer.resblocks, kv):
            qkv = _qkv(block, block.ln_1(tokens))
            grid = qkv.new_zeros(B * S, qkv.shape[-1]).index_copy(0, at, qkv).view(B, S, -1)
            q, k, v = _heads(grid, block.attn.num_heads)
            kp, vp = (_rows(kp, ctx_index, B), _rows(vp, ctx_index, B))
            k, v = torch.cat([kp.to(k.dtype), k], dim=2), torch.cat([vp.to(v.dtype), v], dim=2)
            attended = _merge_heads(_attention(q, k, v, attn_mask=mask)).flatten(0, 1).index_select(0, at)
            tokens = _finish_block(block, tokens, attended)
        return self._project(tokens[torch.cumsum(eot + 1, 0) - 1])

    def _pool(self, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        return self._project(x[torch.arange(x.shape[0], device=x.device), eot])

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """The EOT tokens' features [B, w] -> text features: `ln_final` (per token) and `text_projection`."""
        x = self.ln_final(x)
        if self.text_projection is None:
            return x
        return self.text_projection(x) if isinstance(self.text_projection, nn.Linear) else x @ self.text_projection

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """`model.encode_text(tokens)` computed on the EOT-truncated tokens (same numbers, less work)."""
        eot = self.eot_index(tokens)
        tokens = tokens[:, : int(eot.max()) + 1]
        return self.encode_embeddings(self.embed_tokens(tokens), eot)


def _rows(prefix_states: torch.Tensor, ctx_index: torch.Tensor | None, rows: int) -> torch.Tensor:
    """Each row's prefix keys (values) [B, heads, P, head_dim]: gathered by `ctx_index`, or, for
    m-major rows, broadcast by expand (its backward is a sum; an index's is a slower scatter-add)."""
    if ctx_index is not None:
        return prefix_states[ctx_index]
    m = prefix_states.shape[0]
    return prefix_states.unsqueeze(1).expand(m, rows // m, *prefix_states.shape[1:]).flatten(0, 1)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **mask) -> torch.Tensor:
    """Scaled dot-product attention; on CPU by PyTorch's math kernel, which for prompts of ~10
    tokens is faster than the flash kernel SDPA picks by default (benchmarks/speed/bench_suffix.py)."""
    if q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, **mask)
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v, **mask)


def _qkv(block: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """The input projection [..., 3w] of a block's nn.MultiheadAttention for tokens h [..., w]."""
    return F.linear(h, block.attn.in_proj_weight, block.attn.in_proj_bias)


def _heads(qkv: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[B, L, 3w] -> queries, keys, values [B, heads, L, head_dim]."""
    B, L, w3 = qkv.shape
    return qkv.view(B, L, 3, heads, w3 // (3 * heads)).permute(2, 0, 3, 1, 4).unbind(0)


def _merge_heads(attended: torch.Tensor) -> torch.Tensor:
    """[B, heads, L, head_dim] -> [B, L, w]."""
    B, _, L, _ = attended.shape
    return attended.transpose(1, 2).reshape(B, L, -1)


def _finish_block(block: nn.Module, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
    """The rest of open_clip's ResidualAttentionBlock after attention (`attended` [..., w]): out_proj, residuals,
    MLP."""
    x = x + block.ls_1(block.attn.out_proj(attended))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def init_context(
    tower: TextTower, tokenizer, ctx_init: str, n_ctx: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """[n, w] context: the word embeddings of `ctx_init` (n = its token count), or N(0, 0.02^2) with n = n_ctx."""
    if ctx_init:
        tokens = tokenizer([ctx_init])
        n = int(tower.eot_index(tokens)[0]) - 1
        with torch.no_grad():
            return tower.embed_tokens(tokens.to(tower.token_embedding.weight.device))[0, 1 : 1 + n].float().clone()
    return torch.randn(n_ctx, tower.width, generator=generator) * 0.02


def init_negative_context(
    pos_ctx: torch.Tensor, num_prompts: int, init: str, generator: torch.Generator
) -> torch.Tensor:
    """[p, n, w] negative contexts: `positive`, the official code's, copies of the positive context
    plus U(-1e-5, 1e-5) (so at initialisation NegPrompt ranks images as CoOp does); `random`, N(0, 0.02^2)."""
    if init == "positive":
        noise = torch.rand(num_prompts, *pos_ctx.shape, generator=generator) * 2 - 1
        return pos_ctx.unsqueeze(0).repeat(num_prompts, 1, 1) + noise * 1e-5
    if init == "random":
        return torch.randn(num_prompts, *pos_ctx.shape, generator=generator) * 0.02
    raise NegPromptError(f"neg.init = {init!r}: expected positive or random")


class PromptEncoder(nn.Module):
    """Text features of `[SOS] ctx <name> . [EOS]` for every class name and any number of contexts.

    The name, '.' and EOT embeddings are computed once (frozen) and stored truncated. With
    `shared_prefix` (default where the text blocks allow it) the causal prefix `[SOS] ctx` is run
    once per context instead of once per (context, class): the class positions attend to its
    cached keys and values. Same features; the prefix's share of the work is saved k-fold.
    """

    def __init__(self, model: nn.Module, tokenizer, classnames: list[str], n_ctx: int, shared_prefix: bool = True):
        super().__init__()
        self.tower = TextTower(model)
        self.shared_prefix = shared_prefix and self.tower.supports_shared_prefix()
        self.tower.freeze()
        self.n_ctx = n_ctx
        placeholder = " ".join(["X"] * n_ctx)
        tokens = tokenizer([f"{placeholder} {name}." for name in classnames])
        eot = self.tower.eot_index(tokens)
        if (tokens[:, -1] != 0).any():  # open_clip's tokenizer truncates and puts EOT last
            longest = classnames[int(eot.argmax())]
            raise NegPromptError(
                f"prompt for class {longest!r} with {n_ctx} context tokens does not fit the text context length "
                f"{tokens.shape[1]}"
            )
        tokens = tokens[:, : int(eot.max()) + 1]
        device = self.tower.token_embedding.weight.device
        with torch.no_grad():
            emb = self.tower.embed_tokens(tokens.to(device)).float()
        self.register_buffer("prefix", emb[:, :1].clone(), persistent=False)  # [k, 1, w]  SOS
        self.register_buffer("suffix", emb[:, 1 + n_ctx :].clone(), persistent=False)  # [k, L-1-n, w]
        self.register_buffer("eot", eot.to(device), persistent=False)
        self.num_classes = len(classnames)

    def forward(self, ctx: torch.Tensor, normalize: bool = True, chunk: int = 0) -> torch.Tensor:
        """ctx [n, w] -> [k, d]; ctx [m, n, w] -> [m, k, d] (m contexts shared across classes).

        chunk > 0 encodes at most `chunk` prompts at a time (see `_encode_chunked`)."""
        single = ctx.dim() == 2
        ctx = ctx.unsqueeze(0) if single else ctx
        m, k = ctx.shape[0], self.num_classes
        if self.shared_prefix:
            feats = self._encode_shared_prefix(ctx, chunk)
            feats = F.normalize(feats, dim=-1) if normalize else feats
            return feats[0] if single else feats
        ctx_all = ctx.unsqueeze(1).expand(m, k, *ctx.shape[1:]).reshape(m * k, *ctx.shape[1:])
        x = torch.cat([self.prefix.repeat(m, 1, 1), ctx_all.to(self.prefix.dtype), self.suffix.repeat(m, 1, 1)], dim=1)
        eot = self.eot.repeat(m)
        feats = (
            self._encode_chunked(x, eot, chunk)
            if chunk and x.shape[0] > chunk
            else self.tower.encode_embeddings(x, eot)
        )
        feats = feats.float().view(m, k, -1)
        feats = F.normalize(feats, dim=-1) if normalize else feats
        return feats[0] if single else feats

    def pos_neg(
        self, pos_ctx: torch.Tensor, neg_ctx: torch.Tensor, chunk: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Positive features [k, d] of pos_ctx [n, w] and negative features [k, p, d] of neg_ctx [p, n, w]."""
        return self(pos_ctx, chunk=chunk), self(neg_ctx, chunk=chunk).transpose(0, 1)

    def _encode_shared_prefix(self, ctx: torch.Tensor, chunk: int) -> torch.Tensor:
        """[m, k, d] features: the m prefixes once, then the k·m class suffixes (in length-sorted,
        checkpointed chunks when `chunk` > 0, as `_encode_chunked`)."""
        m, k = ctx.shape[0], self.num_classes
        prefix = torch.cat(
            [self.prefix[:1].expand(m, 1, -1), ctx.to(self.prefix.dtype)], dim=1
        )  # SOS is the same for every class
        kv = self.tower.prefix_kv(prefix)
        P = prefix.shape[1]
        suffix = self.suffix.repeat(m, 1, 1)
        eot = self.eot.repeat(m) - P
        if not chunk or m * k <= chunk:
            return self.tower.encode_suffix(kv, None, suffix, eot).float().view(m, k, -1)
        ctx_index = torch.arange(m, device=suffix.device).repeat_interleave(k)
        grad = torch.is_grad_enabled() and ctx.requires_grad
        out = _by_length(
            lambda idx, length: self.tower.encode_suffix(kv, ctx_index[idx], suffix[idx, :length], eot[idx]),
            eot,
            chunk,
            grad,
        )
        return out.float().view(m, k, -1)

    def _encode_chunked(self, x: torch.Tensor, eot: torch.Tensor, chunk: int) -> torch.Tensor:
        """Prompts sorted by length, each chunk cut to its own longest EOT (short names stop paying
        for the longest), and, when gradients flow, recomputed in backward (activation
        checkpointing): activation memory grows with `chunk`, not with k·p."""
        grad = torch.is_grad_enabled() and x.requires_grad
        return _by_length(lambda idx, length: self.tower.encode_embeddings(x[idx, :length], eot[idx]), eot, chunk, grad)


def _by_length(encode, eot: torch.Tensor, chunk: int, grad: bool) -> torch.Tensor:
    """Rows sorted by EOT position and encoded `chunk` at a time by `encode(rows, length)`, each chunk
    cut to its own longest EOT + 1 and, when gradients flow, recomputed in backward; returned in
    the original row order."""
    eot_cpu = eot.cpu()
    order = torch.argsort(eot_cpu, stable=True)
    out = []
    for idx in order.split(chunk):
        length = int(eot_cpu[idx].max()) + 1
        idx = idx.to(eot.device)
        out.append(checkpoint(encode, idx, length, use_reentrant=False) if grad else encode(idx, length))
    return torch.cat(out)[torch.argsort(order).to(eot.device)]


@torch.no_grad()
def encode_texts(model: nn.Module, tokenizer, texts: list[str], batch_size: int = 1000) -> torch.Tensor:
    """L2-normalised features of fixed prompts (zero-shot baselines), EOT-truncated per batch."""
    tower = TextTower(model)
    device = tower.token_embedding.weight.device
    out = [
        tower.encode_tokens(tokenizer(texts[i : i + batch_size]).to(device)).float()
        for i in range(0, len(texts), batch_size)
    ]
    return F.normalize(torch.cat(out), dim=-1)
