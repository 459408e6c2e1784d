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
from torch.utils.checkpoint import checkpoint

from negprompt import NegPromptError


class TextTower:
    """A view of the text encoder of an open_clip CLIP (ViT or ResNet image tower) or CustomTextCLIP."""

    def __init__(self, model: nn.Module):
        t = model.text if hasattr(model, "text") else model
        if getattr(t, "cls_emb", None) is not None or not hasattr(t, "token_embedding"):
            raise NegPromptError(f"{type(model).__name__}: text tower without token embeddings/EOT pooling (e.g. CoCa, HF text) is not supported")
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
        x = self.transformer(x, attn_mask=mask)
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        if self.text_projection is None:
            return x
        return self.text_projection(x) if isinstance(self.text_projection, nn.Linear) else x @ self.text_projection

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """`model.encode_text(tokens)` computed on the EOT-truncated tokens (same numbers, less work)."""
        eot = self.eot_index(tokens)
        tokens = tokens[:, : int(eot.max()) + 1]
        return self.encode_embeddings(self.embed_tokens(tokens), eot)


def init_context(tower: TextTower, tokenizer, ctx_init: str, n_ctx: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """[n, w] context: the word embeddings of `ctx_init` (n = its token count), or N(0, 0.02^2) with n = n_ctx."""
    if ctx_init:
        tokens = tokenizer([ctx_init])
        n = int(tower.eot_index(tokens)[0]) - 1
        with torch.no_grad():
            return tower.embed_tokens(tokens.to(tower.token_embedding.weight.device))[0, 1 : 1 + n].float().clone()
    return torch.randn(n_ctx, tower.width, generator=generator) * 0.02


class PromptEncoder(nn.Module):
    """Text features of `[SOS] ctx <name> . [EOS]` for every class name and any number of contexts.

    The name, '.' and EOT embeddings are computed once (frozen) and stored truncated.
    """

    def __init__(self, model: nn.Module, tokenizer, classnames: list[str], n_ctx: int):
        super().__init__()
        self.tower = TextTower(model)
        self.tower.freeze()
        self.n_ctx = n_ctx
        placeholder = " ".join(["X"] * n_ctx)
        tokens = tokenizer([f"{placeholder} {name}." for name in classnames])
        eot = self.tower.eot_index(tokens)
        if (tokens[:, -1] != 0).any():  # open_clip's tokenizer truncates and puts EOT last
            longest = classnames[int(eot.argmax())]
            raise NegPromptError(f"prompt for class {longest!r} with {n_ctx} context tokens does not fit the text context length {tokens.shape[1]}")
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
        ctx_all = ctx.unsqueeze(1).expand(m, k, *ctx.shape[1:]).reshape(m * k, *ctx.shape[1:])
        x = torch.cat([self.prefix.repeat(m, 1, 1), ctx_all.to(self.prefix.dtype), self.suffix.repeat(m, 1, 1)], dim=1)
        eot = self.eot.repeat(m)
        feats = self._encode_chunked(x, eot, chunk) if chunk and x.shape[0] > chunk else self.tower.encode_embeddings(x, eot)
        feats = feats.float().view(m, k, -1)
        feats = F.normalize(feats, dim=-1) if normalize else feats
        return feats[0] if single else feats

    def pos_neg(self, pos_ctx: torch.Tensor, neg_ctx: torch.Tensor, chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Positive features [k, d] of pos_ctx [n, w] and negative features [k, p, d] of neg_ctx [p, n, w]."""
        return self(pos_ctx, chunk=chunk), self(neg_ctx, chunk=chunk).transpose(0, 1)

    def _encode_chunked(self, x: torch.Tensor, eot: torch.Tensor, chunk: int) -> torch.Tensor:
        """Prompts sorted by length, each chunk cut to its own longest EOT (short names stop paying
        for the longest), and, when gradients flow, recomputed in backward (activation
        checkpointing): activation memory grows with `chunk`, not with k·p."""
        eot_cpu = eot.cpu()
        order = torch.argsort(eot_cpu, stable=True)
        grad = torch.is_grad_enabled() and x.requires_grad
        out = []
        for idx in order.split(chunk):
            length = int(eot_cpu[idx].max()) + 1
            idx = idx.to(x.device)
            xi, ei = x[idx, :length], eot[idx]
            out.append(checkpoint(self.tower.encode_embeddings, xi, ei, use_reentrant=False) if grad else self.tower.encode_embeddings(xi, ei))
        return torch.cat(out)[torch.argsort(order).to(x.device)]


@torch.no_grad()
def encode_texts(model: nn.Module, tokenizer, texts: list[str], batch_size: int = 1000) -> torch.Tensor:
    """L2-normalised features of fixed prompts (zero-shot baselines), EOT-truncated per batch."""
    tower = TextTower(model)
    device = tower.token_embedding.weight.device
    out = [tower.encode_tokens(tokenizer(texts[i : i + batch_size]).to(device)).float() for i in range(0, len(texts), batch_size)]
    return F.normalize(torch.cat(out), dim=-1)
