"""The graph-fusion classifier's fusion layers and head: every node attends to the others (GATv2 or
cross-attention), then a SwiGLU MLP turns the pooled nodes into logits. ``FUSION_BLOCKS`` is the only
place a fusion's name meets its class ("concat" has no block: the model projects the joined nodes)."""

from __future__ import annotations

import torch
from torch import nn


class DenseGATv2(nn.Module):
    """Multi-head GATv2 attention (Brody et al., ICLR 2022) over a small dense graph with a node mask:
    e_ij = a^T LeakyReLU(W_s h_i + W_t h_j), softmax over the valid j, h_i' = sum_j a_ij W_t h_j.
    Modalities form a fully connected graph with self-loops (a handful of nodes: a dense form is
    exact and needs no graph library). Residual + LayerNorm, as a transformer block."""

    def __init__(self, size: int, heads: int, dropout: float = 0.1):
        super().__init__()
        self.heads, self.head_size = heads, size // heads
        self.source = nn.Linear(size, size)
        self.target = nn.Linear(size, size)
        self.attention = nn.Parameter(torch.randn(heads, self.head_size) * self.head_size**-0.5)
        self.out = nn.Linear(size, size)
        self.norm = nn.LayerNorm(size)
        self.dropout = nn.Dropout(dropout)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The attention vectors drawn again as at construction (the linear layers reset themselves)."""
        self.attention.copy_(torch.randn_like(self.attention) * self.head_size**-0.5)

    def forward(self, nodes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, _ = nodes.shape
        s = self.source(nodes).view(b, n, self.heads, self.head_size)
        t = self.target(nodes).view(b, n, self.heads, self.head_size)
        pair = nn.functional.leaky_relu(s[:, :, None] + t[:, None], 0.2)  # B, N_i, N_j, H, d
        scores = (pair * self.attention).sum(-1)  # B, N_i, N_j, H
        scores = scores.masked_fill(~mask[:, None, :, None], torch.finfo(scores.dtype).min)
        weights = self.dropout(scores.softmax(2))
        mixed = torch.einsum("bijh,bjhd->bihd", weights, t).reshape(b, n, -1)
        return self.norm(nodes + self.dropout(self.out(nn.functional.elu(mixed))))


class CrossModalAttention(nn.Module):
    """HCAM-like fusion: every modality node attends to the others (scaled dot-product, masked)."""

    def __init__(self, size: int, heads: int, dropout: float = 0.1):
        super().__init__()
        self.attention = nn.MultiheadAttention(size, heads, dropout=dropout, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(size), nn.LayerNorm(size)
        self.ffn = nn.Sequential(nn.Linear(size, 2 * size), nn.GELU(), nn.Linear(2 * size, size))
        self.dropout = nn.Dropout(dropout)

    def forward(self, nodes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mixed, _ = self.attention(nodes, nodes, nodes, key_padding_mask=~mask, need_weights=False)
        nodes = self.norm1(nodes + self.dropout(mixed))
        return self.norm2(nodes + self.dropout(self.ffn(nodes)))


class SwiGLUClassifier(nn.Module):
    """(silu(x W_a) * x W_b) W_o with dropout: the paper's SwiGLU MLP head."""

    def __init__(self, size: int, hidden: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.gate_up = nn.Linear(size, 2 * hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, -1)
        return self.out(self.dropout(nn.functional.silu(gate) * up))


# config.fusion -> the block stacked fusion_layers times (B, N, H -> B, N, H)
FUSION_BLOCKS = {"gat": DenseGATv2, "cross_attention": CrossModalAttention}

__all__ = ["FUSION_BLOCKS", "CrossModalAttention", "DenseGATv2", "SwiGLUClassifier"]
