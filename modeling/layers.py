"""Building blocks shared by serhub's model families. Every module is mask-aware: padding never
changes a result, so a padded batch gives the same outputs as one example at a time."""

from __future__ import annotations

import torch
from torch import nn


class WeightedLayerSum(nn.Module):
    """Learned softmax-weighted sum of an encoder's hidden layers (SUPERB; MSP-Podcast baseline).

    Initialised to equal weights. ``hidden_states``: a sequence of L tensors (B, T, D) or one tensor
    (B, L, T, D) -> (B, T, D).
    """

    def __init__(self, num_layers: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_layers))

    def forward(self, hidden_states) -> torch.Tensor:
        stacked = (
            hidden_states if torch.is_tensor(hidden_states) else torch.stack(tuple(hidden_states), dim=1)
        )  # B, L, T, D
        if stacked.shape[1] != self.weights.numel():
            raise ValueError(
                f"WeightedLayerSum was built for {self.weights.numel()} layers, got {stacked.shape[1]}; "
                "pass every hidden state of the encoder (embeddings included)."
            )
        w = self.weights.softmax(-1).to(stacked.dtype)
        return torch.einsum("l,bltd->btd", w, stacked)


class AttentiveStatisticsPooling(nn.Module):
    """Attentive statistics pooling (Okabe et al., Interspeech 2018, eqs. 7-10).

    e_t = v^T tanh(W h_t + b),  a = softmax(e) over valid frames,
    mu = sum_t a_t h_t,  sigma = sqrt(sum_t a_t h_t^2 - mu^2)  ->  [mu; sigma]   # B, T, D -> B, 2D
    """

    def __init__(self, hidden_size: int, attention_size: int = 128, eps: float = 1e-5):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Linear(hidden_size, attention_size), nn.Tanh(), nn.Linear(attention_size, 1)
        )
        self.eps = eps

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        scores = self.attention(hidden_states).squeeze(-1).float()  # B, T
        if mask is not None:
            scores = scores.masked_fill(~mask.bool(), torch.finfo(scores.dtype).min)
        alpha = scores.softmax(-1).unsqueeze(-1)  # B, T, 1
        h = hidden_states.float()
        mean = (alpha * h).sum(1)  # B, D
        var = (alpha * h.pow(2)).sum(1) - mean.pow(2)
        std = var.clamp_min(self.eps).sqrt()
        return torch.cat([mean, std], dim=-1).to(hidden_states.dtype)  # B, 2D


class ClassificationHead(nn.Module):
    """Linear -> activation -> dropout -> Linear (the MLP head of the speech and LLM classifiers)."""

    def __init__(self, input_size: int, hidden_size: int, num_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.dense = nn.Linear(input_size, hidden_size)
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(hidden_size, num_outputs)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(self.activation(self.dense(self.dropout(pooled)))))


class LinearProjector(nn.Module):
    """THAU-UPM's projector: stack ``k`` consecutive frames, then one linear map to the LLM width.

    B, T, D -> B, ceil(T/k), k*D -> B, N, H. A token is valid when any of its frames is.
    """

    def __init__(self, input_size: int, output_size: int, stack_factor: int = 4):
        super().__init__()
        self.stack_factor = stack_factor
        self.proj = nn.Linear(input_size * stack_factor, output_size)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, d = frames.shape
        k = self.stack_factor
        pad = (-t) % k
        frames = nn.functional.pad(
            frames * mask[..., None].to(frames.dtype), (0, 0, 0, pad)
        )  # padded frames are zeros
        mask = nn.functional.pad(mask, (0, pad))
        stacked = frames.reshape(b, (t + pad) // k, k * d)  # B, N, k*D
        return self.proj(stacked), mask.reshape(b, -1, k).any(-1)


class QueryPoolingMapper(nn.Module):
    """EmoSLLM's QPMapper (arXiv:2508.14130, sec. 3.1): ``num_queries`` learnable queries are put
    before the audio frames, a small transformer encoder runs over both, and the query outputs are
    the audio tokens: B, T, D -> B, Q, H, whatever T.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        num_queries: int = 32,
        num_layers: int = 2,
        hidden_size: int | None = None,
        num_heads: int = 8,
    ):
        super().__init__()
        hidden = hidden_size or input_size
        if hidden % num_heads:
            raise ValueError(f"mapper hidden size {hidden} is not divisible by mapper_heads={num_heads}")
        self.in_proj = nn.Linear(input_size, hidden)
        self.queries = nn.Parameter(torch.randn(num_queries, hidden) * 0.02)
        layer = nn.TransformerEncoderLayer(
            hidden, num_heads, 4 * hidden, dropout=0.0, batch_first=True, norm_first=True
        )
        # no nested-tensor fast path: it changes results with the padding of the batch
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.out_proj = nn.Linear(hidden, output_size)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, q = frames.shape[0], self.queries.shape[0]
        x = torch.cat(
            [self.queries.expand(b, -1, -1).to(frames.dtype), self.in_proj(frames)], dim=1
        )  # B, Q+T, H
        padding = torch.cat([torch.zeros(b, q, dtype=torch.bool, device=mask.device), ~mask.bool()], dim=1)
        x = self.encoder(x, src_key_padding_mask=padding)
        tokens = self.out_proj(self.norm(x[:, :q]))  # B, Q, H_llm
        return tokens, torch.ones(b, q, dtype=torch.bool, device=frames.device)


__all__ = [
    "AttentiveStatisticsPooling",
    "ClassificationHead",
    "LinearProjector",
    "QueryPoolingMapper",
    "WeightedLayerSum",
]
