"""The graph-fusion classifier's node encoders that see more than one linear layer: the spectral
branch's log-mel CNN (trained from scratch) and the standardisation of the frozen summaries."""

from __future__ import annotations

import torch
from torch import nn


class SpectralCNN(nn.Module):
    """A small log-mel CNN (stands in for CED-Small): 2x2 average pooling of the log-mel (40 bands,
    20 ms frames: four times less work), 3 blocks of conv, BatchNorm, ReLU and 2x2 max pooling, then a
    masked mean over time. Padding never reaches a valid frame: the input is
    re-masked before every block, and a pooled frame is valid only when both its frames were, so a
    clip gives the same vector alone and in a padded batch."""

    def __init__(self, n_mels: int, channels: int, output_size: int):
        super().__init__()
        self.blocks = nn.ModuleList()
        c_in = 1
        for c_out in (channels, channels, 2 * channels):
            self.blocks.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)
                )
            )
            c_in = c_out
        self.proj = nn.Linear(c_in * (n_mels // 16), output_size)

    def forward(self, log_mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log_mel: (B, T, n_mels), mask: (B, T) -> (B, output_size)."""
        mask = mask.bool()
        if log_mel.shape[1] < 16:  # shorter than the four poolings: padded (masked), the node is masked later
            pad = 16 - log_mel.shape[1]
            log_mel = nn.functional.pad(log_mel, (0, 0, 0, pad))
            mask = nn.functional.pad(mask, (0, pad))
        x = log_mel.transpose(1, 2)[:, None]  # B, 1, mels, T
        x = nn.functional.avg_pool2d(x * mask[:, None, None, :].to(x.dtype), 2)
        t = x.shape[-1]
        mask = mask[:, 0 : 2 * t : 2] & mask[:, 1 : 2 * t : 2]
        for block in self.blocks:
            x = block(x * mask[:, None, None, :].to(x.dtype))
            t = x.shape[-1]
            mask = mask[:, 0 : 2 * t : 2] & mask[:, 1 : 2 * t : 2]
        x = x.flatten(1, 2).transpose(1, 2)  # B, T/8, C*mels/8
        m = mask[..., None].to(x.dtype)
        return self.proj((x * m).sum(1) / m.sum(1).clamp_min(1.0))


class SummaryStandardizer(nn.Module):
    """Per-dimension standardisation of the frozen summaries with training-set statistics (buffers,
    saved with the model; identity until ``fit``). Frame means of a Whisper layer share one large
    common component across clips: standardised, what differs between clips is what the projections
    see, and training leaves its plateau sooner."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        super().__init__()
        for name, shape in shapes.items():
            self.register_buffer(f"{name}_mean", torch.zeros(shape))
            self.register_buffer(f"{name}_std", torch.ones(shape))

    @torch.no_grad()
    def fit(self, summaries: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None = None) -> None:
        for name, values in summaries.items():
            if not hasattr(self, f"{name}_mean"):
                continue
            rows = values.float()
            if masks and name in masks:
                rows = rows[masks[name].bool()]
            if len(rows) < 2:
                continue
            getattr(self, f"{name}_mean").copy_(rows.mean(0))
            getattr(self, f"{name}_std").copy_(rows.std(0).clamp_min(1e-5))

    def forward(self, name: str, values: torch.Tensor) -> torch.Tensor:
        mean, std = getattr(self, f"{name}_mean"), getattr(self, f"{name}_std")
        return (values - mean.to(values.dtype)) / std.to(values.dtype)


__all__ = ["SpectralCNN", "SummaryStandardizer"]
