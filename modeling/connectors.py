"""Connectors: a frozen speech encoder's frames -> the LLM's input tokens.

Each connector is a class that knows what it is: how many audio tokens it makes (``num_tokens``), in
how many places of the prompt they go (``groups``), which encoder layers it reads (``every_layer``),
whether its output is scaled to the LLM's embeddings (``scaled_output``), and its own health check
(``health_warning``). ``CONNECTORS`` is the only place a connector's name meets code: configs,
processors, models and recipes look the class up there.

    linear         THAU-UPM's projector: k frames stacked, one linear map     B, T, D -> B, T/k, H
    query_pooling  EmoSLLM's QPMapper: Q learnable queries + a small encoder   B, T, D -> B, Q, H
    vae_ib         the descriptor system's two variational bottleneck branches B, L, T, D -> B, 2 T/k, H
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from .layers import RunningFrameNorm, WeightedLayerSum, stack_frames

FRAME_NORMS = ("none", "layer", "global")
# below this mean pairwise cosine distance between clips' mean audio tokens, a query-pooling mapper has
# collapsed (a new 2-layer mapper gives ~0.5, a collapsed one < 0.01)
COLLAPSE_DIVERSITY = 0.05


class Connector(nn.Module):
    """The interface every connector implements: ``forward(frames, mask) -> (tokens, token_mask)``,
    with ``frames`` the encoder's last layer (B, T, D), or every layer (B, L, T, D) when ``every_layer``."""

    name: ClassVar[str]
    groups: ClassVar[tuple[str, ...]] = ("",)  # named places of the prompt taking audio tokens
    every_layer: ClassVar[bool] = False  # reads every encoder layer (so caches keep them all)
    scaled_output: ClassVar[bool] = False  # tokens RMS-normalised to ``mapper_output_scale``

    @classmethod
    def num_tokens(cls, encoder_frames: int, num_queries: int, stack_factor: int) -> int:
        """Audio tokens made from ``encoder_frames`` valid frames, in each of ``groups``."""
        return -(-encoder_frames // stack_factor)

    @classmethod
    def check_config(cls, config) -> None:
        """ValueError for settings this connector cannot be built with."""
        if config.stack_factor < 1:
            raise ValueError(f"stack_factor must be >= 1, got {config.stack_factor}")

    @classmethod
    def from_config(cls, config, max_frames: int) -> Connector:
        raise NotImplementedError

    @classmethod
    def describe(cls, config) -> str:
        """One line for cards and logs."""
        return f"{cls.name} ({config.stack_factor} frames stacked)"

    def health_warning(self, statistics: dict[str, float]) -> str | None:
        """A warning when ``AudioLLM*.audio_token_statistics`` say the tokens carry no audio, else None.
        Connectors that keep one token per frame group have no such sign: their clip means share the
        encoder's common component (low diversity) and still tell clips apart."""
        return None

    def pop_kl(self) -> torch.Tensor | None:
        """The KL term of the last forward (variational connectors), forgotten once read."""
        return None


class LinearProjector(Connector):
    """THAU-UPM's projector: stack ``k`` consecutive frames, then one linear map to the LLM width.

    B, T, D -> B, ceil(T/k), k*D -> B, N, H. A token is valid when any of its frames is.
    """

    def __init__(self, input_size: int, output_size: int, stack_factor: int = 4):
        super().__init__()
        self.stack_factor = stack_factor
        self.proj = nn.Linear(input_size * stack_factor, output_size)

    name = "linear"

    @classmethod
    def from_config(cls, config, max_frames: int) -> LinearProjector:
        return cls(config.audio_hidden_size, config.text_config.hidden_size, config.stack_factor)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stacked, token_mask = stack_frames(frames, mask, self.stack_factor)  # B, N, k*D
        return self.proj(stacked), token_mask


class VariationalBranch(nn.Module):
    """One variational information-bottleneck branch (arXiv:2505.23236, sec. 2): its own weighted sum
    of the encoder's layers -> (mu, log sigma^2) per frame -> z (sampled in training, mu at
    inference) -> ``stack_factor`` frames stacked -> MLP adapter to the LLM width.

    ``kl`` after a forward: KL(q(z|x) || N(0, I)) summed over the latent and averaged over valid frames.
    """

    def __init__(
        self,
        num_layers: int,
        input_size: int,
        latent_size: int,
        output_size: int,
        stack_factor: int = 4,
        output_scale: float | None = None,
    ):
        super().__init__()
        # every layer standardised per channel with training-set statistics before the weighted sum:
        # Whisper's frames share one large component (see QueryPoolingMapper), which per-frame
        # LayerNorm keeps; with it the branch's tokens came out alike for every clip (token
        # diversity 0.015, SER at chance, in a 120-step CPU run)
        self.in_norm = RunningFrameNorm(num_layers * input_size)
        self.layer_sum = WeightedLayerSum(num_layers)
        self.posterior = nn.Linear(input_size, 2 * latent_size)
        self.stack_factor = stack_factor
        self.adapter = nn.Sequential(
            nn.Linear(latent_size * stack_factor, output_size), nn.GELU(), nn.Linear(output_size, output_size)
        )
        self.output_gain = (
            nn.Parameter(torch.full((output_size,), float(output_scale))) if output_scale else None
        )
        self.kl = None

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, layers, t, d = hidden_states.shape
        flat = hidden_states.permute(0, 2, 1, 3).reshape(b, t, layers * d)  # B, T, L*D
        # a frozen branch (its parameters not trained: the other stage's) keeps its statistics too
        update = self.training and self.posterior.weight.requires_grad
        normed = self.in_norm(flat, mask, update=update).reshape(b, t, layers, d).permute(0, 2, 1, 3)
        frames = self.layer_sum(normed)  # B, T, D
        mu, log_var = self.posterior(frames).chunk(2, dim=-1)
        log_var = log_var.clamp(-10.0, 10.0)
        z = mu + torch.randn_like(mu) * (0.5 * log_var).exp() if self.training else mu
        m = mask[..., None].to(mu.dtype)
        kl = 0.5 * (mu.pow(2) + log_var.exp() - log_var - 1.0).sum(-1, keepdim=True)
        self.kl = (kl * m).sum() / m.sum().clamp_min(1.0)
        stacked, token_mask = stack_frames(z, mask, self.stack_factor)
        tokens = self.adapter(stacked)
        if self.output_gain is not None:
            tokens = tokens * torch.rsqrt(tokens.pow(2).mean(-1, keepdim=True) + 1e-6) * self.output_gain
        return tokens, token_mask


class VariationalBottleneckConnector(Connector):
    """The descriptor system's connector: two parallel ``VariationalBranch``es over the same encoder
    layers, content (Z_con, trained on ASR) and descriptor (Z_des, trained on descriptors + SER).

    (B, L, T, D) -> tokens (B, 2N, H) laid out [content N | descriptor N] per clip, and their mask:
    a clip's valid tokens read, in order, its content tokens then its descriptor tokens, which the
    prompt's two audio placeholders (``groups``) receive. The KL after a
    forward: ``pop_kl()`` (the recipe weights it by the annealed beta).
    """

    BRANCHES = ("content", "descriptor")
    name = "vae_ib"
    groups = ("content", "speaking style")
    every_layer = True
    scaled_output = True

    @classmethod
    def from_config(cls, config, max_frames: int) -> VariationalBottleneckConnector:
        from .encoder_family import encoder_family

        return cls(
            encoder_family(config.audio_config).num_layers + 1,  # the embeddings' output too
            config.audio_hidden_size,
            config.vib_latent_size,
            config.text_config.hidden_size,
            config.stack_factor,
            config.mapper_output_scale,
        )

    @classmethod
    def describe(cls, config) -> str:
        return f"vae_ib (content + descriptor branches, {config.vib_latent_size} latents, {config.stack_factor} frames stacked)"

    def __init__(self, num_layers, input_size, latent_size, output_size, stack_factor=4, output_scale=None):
        super().__init__()
        self.content = VariationalBranch(
            num_layers, input_size, latent_size, output_size, stack_factor, output_scale
        )
        self.descriptor = VariationalBranch(
            num_layers, input_size, latent_size, output_size, stack_factor, output_scale
        )

    def pop_kl(self) -> torch.Tensor | None:
        """The two branches' KL terms of the last forward, summed, and forget them (so a later
        forward without audio cannot add a stale term)."""
        parts = [b.kl for b in (self.content, self.descriptor) if b.kl is not None]
        self.content.kl = self.descriptor.kl = None
        return sum(parts) if parts else None

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if hidden_states.dim() == 3:  # one layer given: the weighted sum has only it to weigh
            hidden_states = hidden_states[:, None]
        content, content_mask = self.content(hidden_states, mask)
        descriptor, descriptor_mask = self.descriptor(hidden_states, mask)
        return torch.cat([content, descriptor], 1), torch.cat([content_mask, descriptor_mask], 1)


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
        self.in_norm = {"layer": nn.LayerNorm(input_size), "global": RunningFrameNorm(input_size)}.get(
            frame_norm
        )
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
        if self.frame_norm == "global":
            frames = self.in_norm(frames, mask)
        elif self.frame_norm == "layer":
            frames = self.in_norm(frames)
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


CONNECTORS: dict[str, type[Connector]] = {
    c.name: c for c in (LinearProjector, QueryPoolingMapper, VariationalBottleneckConnector)
}


def connector_class(name: str) -> type[Connector]:
    """The connector class called ``name``; ValueError listing the known ones otherwise."""
    if name not in CONNECTORS:
        raise ValueError(f"connector must be one of {tuple(CONNECTORS)}, got {name!r}")
    return CONNECTORS[name]


__all__ = [
    "COLLAPSE_DIVERSITY",
    "CONNECTORS",
    "FRAME_NORMS",
    "Connector",
    "LinearProjector",
    "QueryPoolingMapper",
    "VariationalBottleneckConnector",
    "VariationalBranch",
    "connector_class",
    "sinusoidal_positions",
]
