"""EmoSLLM's QPMapper: learnable queries pool a clip's encoder frames into a fixed number of audio tokens."""

from __future__ import annotations

import math

import torch
from torch import nn

from .connector_base import COLLAPSE_DIVERSITY, FRAME_NORMS, Connector
from .layers import frame_norm_layer, normalise_frames


def sinusoidal_positions(length: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """(length, dim) sine/cosine position codes (Vaswani et al. 2017, sec. 3.5); any length."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(position * freq)
    codes[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return codes.to(dtype or torch.float32)


class QueryPoolingMapper(Connector):
    """EmoSLLM's QPMapper (arXiv:2508.14130, sec. 3.1): ``num_queries`` learnable queries are put
    before the audio frames, a small transformer encoder runs over both, and the query outputs are
    the audio tokens: B, T, D -> B, Q, H, whatever T.

    What differs from a plain transformer over [queries; frames] keeps the audio tokens informative
    when the mapper is trained for few steps (without it they collapse into one constant soft prompt
    that the LLM ignores; the README gives the measurements):

    - ``frame_norm``: the encoder's frames are standardised per channel before the mapper. "global" =
      with statistics gathered over the training frames (``RunningFrameNorm``): Whisper's clip-mean
      frames share one large common component, so the near-uniform attention of a new mapper would
      give every clip the same tokens. "layer" = LayerNorm per frame (keeps that component);
      "none" = the paper's raw frames.
    - every query starts from the clip's mean projected frame (plus its learned vector), so the
      audio is in the query stream from the first step instead of only through attention;
    - queries attend to the frames only, never to each other: with the queries visible, the
      cheapest way to fit the class prior is queries that attend to themselves and ignore the audio;
    - ``positions``: sinusoidal time positions on the frames (scaled by a learned factor starting
      at 0.1), so queries can attend to different parts of the clip (a transcript needs order);
    - ``output_scale``: the tokens are RMS-normalised with a learned gain that starts at the LLM's
      own embedding RMS, so audio tokens enter the LLM at the scale of its text embeddings.
    """

    name = "query_pooling"
    scaled_output = True

    @classmethod
    def num_tokens(cls, encoder_frames: int, num_queries: int, stack_factor: int) -> int:
        return num_queries

    @classmethod
    def check_config(cls, config) -> None:
        if config.num_queries < 1:
            raise ValueError(f"num_queries must be >= 1, got {config.num_queries}")
        if config.mapper_frame_norm not in FRAME_NORMS:
            raise ValueError(
                f"mapper_frame_norm must be one of {FRAME_NORMS}, got {config.mapper_frame_norm!r}"
            )

    @classmethod
    def from_config(cls, config, max_frames: int) -> QueryPoolingMapper:
        return cls(
            config.audio_hidden_size,
            config.text_config.hidden_size,
            config.num_queries,
            config.mapper_layers,
            config.mapper_hidden_size,
            config.mapper_heads,
            config.mapper_frame_norm,
            config.mapper_positions,
            config.mapper_output_scale,
            max_frames=max_frames,  # one window per encoder chunk
        )

    @classmethod
    def describe(cls, config) -> str:
        return f"query_pooling ({config.num_queries} queries, {config.mapper_layers} layers)"

    def health_warning(self, statistics: dict[str, float]) -> str | None:
        if statistics["token_diversity"] >= COLLAPSE_DIVERSITY:
            return None
        return (
            f"the audio tokens are near-identical between clips (token diversity "
            f"{statistics['token_diversity']:.4f} < {COLLAPSE_DIVERSITY}): the query-pooling mapper has collapsed "
            "and the LLM cannot tell clips apart. Lower the learning rate or train longer."
        )

    def __init__(
        self,
        input_size: int,
        output_size: int,
        num_queries: int = 32,
        num_layers: int = 2,
        hidden_size: int | None = None,
        num_heads: int = 8,
        frame_norm: str = "global",
        positions: bool = True,
        output_scale: float | None = None,
        max_frames: int = 1500,
    ):
        super().__init__()
        hidden = hidden_size or input_size
        if hidden % num_heads:
            raise ValueError(f"mapper hidden size {hidden} is not divisible by mapper_heads={num_heads}")
        if frame_norm not in FRAME_NORMS:
            raise ValueError(f"frame_norm must be one of {FRAME_NORMS}, got {frame_norm!r}")
        self.frame_norm, self.positions, self.max_frames = frame_norm, positions, max_frames
        self.in_norm = frame_norm_layer(frame_norm, input_size)
        self.in_proj = nn.Linear(input_size, hidden)
        self.queries = nn.Parameter(torch.randn(num_queries, hidden) * 0.02)
        # positions start small beside the frames' content (~0.4 RMS after in_proj), so they order
        # the frames without drowning what differs between clips
        self.position_scale = nn.Parameter(torch.tensor(0.1)) if positions else None
        layer = nn.TransformerEncoderLayer(
            hidden, num_heads, 4 * hidden, dropout=0.0, batch_first=True, norm_first=True
        )
        # no nested-tensor fast path: it changes results with the padding of the batch
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.out_proj = nn.Linear(hidden, output_size)
        # gain of the RMS-normalised output; None: the paper's unnormalised linear output
        self.output_gain = (
            nn.Parameter(torch.full((output_size,), float(output_scale))) if output_scale else None
        )

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, q = frames.shape[0], frames.shape[1], self.queries.shape[0]
        frames = normalise_frames(self.in_norm, frames, mask)
        # Long audio: windows of max_frames (30 s of Whisper frames) are pooled one at a time and their
        # query outputs averaged, weighted by valid frames, so memory stays O(T) instead of O(T^2)
        # (a 10-minute clip would otherwise ask for ~30 GB of attention scores). Windows start at
        # fixed frame positions, so a clip's tokens do not depend on the rest of its batch.
        pooled, weight = 0.0, 0.0
        for start in range(0, t, self.max_frames):
            window = mask[:, start : start + self.max_frames].bool()
            valid = window.sum(1).to(frames.dtype)[:, None, None]  # B, 1, 1
            if not bool(valid.any()):
                continue
            # a clip with no frame in this window attends to a dummy one; its weight is 0
            window = window.clone()
            window[valid[:, 0, 0] == 0, 0] = True
            pooled = pooled + valid * self._pool(frames[:, start : start + self.max_frames], window)
            weight = weight + valid
        tokens = self.out_proj(pooled / weight)  # B, Q, H_llm
        if self.output_gain is not None:
            tokens = tokens * torch.rsqrt(tokens.pow(2).mean(-1, keepdim=True) + 1e-6) * self.output_gain
        return tokens, torch.ones(b, q, dtype=torch.bool, device=frames.device)

    def _pool(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Normalised frames of one window -> the queries' final states. B, T, D -> B, Q, H."""
        b, t, q = frames.shape[0], frames.shape[1], self.queries.shape[0]
        x = self.in_proj(frames)  # B, T, H
        if self.positions:
            x = x + self.position_scale.to(x.dtype) * sinusoidal_positions(t, x.shape[-1], x.device, x.dtype)
        m = mask[..., None].to(x.dtype)
        pooled = (x * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1.0)  # B, 1, H
        queries = self.queries.to(x.dtype) + pooled  # B, Q, H: every query starts from the clip's mean
        x = torch.cat([queries, x], dim=1)  # B, Q+T, H
        padding = torch.cat([torch.zeros(b, q, dtype=torch.bool, device=mask.device), ~mask], dim=1)
        # queries read the frames, never each other (nor do frames read queries): with the queries
        # visible, a few steps teach them to attend to themselves and ignore the audio altogether
        blocked = torch.zeros(q + t, q + t, dtype=torch.bool, device=x.device)
        blocked[:, :q] = True
        x = self.encoder(x, mask=blocked, src_key_padding_mask=padding)
        return self.norm(x[:, :q])


__all__ = ["QueryPoolingMapper", "sinusoidal_positions"]
