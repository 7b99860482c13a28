"""Connectors: a frozen speech encoder's frames -> the LLM's input tokens.

Each connector is a class that knows what it is: how many audio tokens it makes (``num_tokens``), in
how many places of the prompt they go (``groups``), which encoder layers it reads (``every_layer``),
whether its output is scaled to the LLM's embeddings (``scaled_output``), and its own health check
(``health_warning``). ``CONNECTORS`` is the only place a connector's name meets code: configs,
processors, models and recipes look the class up there.

    linear         THAU-UPM's projector: k frames stacked, one linear map     B, T, D -> B, T/k, H
    query_pooling  EmoSLLM's QPMapper: Q learnable queries + a small encoder   B, T, D -> B, Q, H
    vae_ib         the descriptor system's two variational bottleneck branches B, L, T, D -> B, 2 T/k, H
    ctc_path       the words a CTC head hears, as the LLM's own token embeddings, + QPMapper voice tokens

The base class is in ``connector_base.py``, the QPMapper in ``query_pooling.py``, the CTC path in
``ctc_path.py``; this module holds the others and the table.
"""

from __future__ import annotations

import torch
from torch import nn

from .connector_base import COLLAPSE_DIVERSITY, FRAME_NORMS, Connector
from .ctc_path import CTCPathConnector
from .layers import RunningFrameNorm, WeightedLayerSum, frame_norm_layer, normalise_frames, stack_frames
from .query_pooling import QueryPoolingMapper, sinusoidal_positions


class LinearProjector(Connector):
    """THAU-UPM's projector: stack ``k`` consecutive frames, then one linear map to the LLM width.

    B, T, D -> B, ceil(T/k), k*D -> B, N, H. A token is valid when any of its frames is.

    ``frame_norm`` (``projector_frame_norm`` in the config): "none" (THAU's raw frames), "global"
    (every channel standardised with statistics gathered over the training frames, as the speech
    classifier's ``frame_norm`` and the QPMapper do: Whisper's frames share one large component that
    a linear map must otherwise spend its weights on) or "layer" (LayerNorm per frame).
    """

    def __init__(self, input_size: int, output_size: int, stack_factor: int = 4, frame_norm: str = "none"):
        super().__init__()
        if frame_norm not in FRAME_NORMS:
            raise ValueError(f"projector_frame_norm must be one of {FRAME_NORMS}, got {frame_norm!r}")
        self.stack_factor = stack_factor
        self.in_norm = frame_norm_layer(frame_norm, input_size)
        self.proj = nn.Linear(input_size * stack_factor, output_size)

    name = "linear"

    @classmethod
    def from_config(cls, config, max_frames: int) -> LinearProjector:
        return cls(
            config.audio_hidden_size,
            config.text_config.hidden_size,
            config.stack_factor,
            config.projector_frame_norm,
        )

    @classmethod
    def check_config(cls, config) -> None:
        super().check_config(config)
        if config.projector_frame_norm not in FRAME_NORMS:
            raise ValueError(
                f"projector_frame_norm must be one of {FRAME_NORMS}, got {config.projector_frame_norm!r}"
            )

    @classmethod
    def describe(cls, config) -> str:
        norm = {
            "global": ", frames standardised with training statistics",
            "layer": ", frames layer-normalised",
        }
        return f"linear ({config.stack_factor} frames stacked{norm.get(config.projector_frame_norm, '')})"

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # a frozen projector (a later phase training only LoRA) keeps its statistics too
        frames = normalise_frames(
            self.in_norm, frames, mask, update=self.training and self.proj.weight.requires_grad
        )
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


CONNECTORS: dict[str, type[Connector]] = {
    c.name: c for c in (LinearProjector, QueryPoolingMapper, VariationalBottleneckConnector, CTCPathConnector)
}


def connector_class(name: str) -> type[Connector]:
    """The connector class called ``name``; ValueError listing the known ones otherwise."""
    if name not in CONNECTORS:
        raise ValueError(f"connector must be one of {tuple(CONNECTORS)}, got {name!r}")
    return CONNECTORS[name]


__all__ = [
    "COLLAPSE_DIVERSITY",
    "CONNECTORS",
    "CTCPathConnector",
    "FRAME_NORMS",
    "Connector",
    "LinearProjector",
    "QueryPoolingMapper",
    "VariationalBottleneckConnector",
    "VariationalBranch",
    "connector_class",
    "sinusoidal_positions",
]
