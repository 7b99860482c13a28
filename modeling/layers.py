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


__all__ = ["AttentiveStatisticsPooling", "ClassificationHead", "WeightedLayerSum"]
