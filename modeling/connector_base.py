"""What every connector is (``Connector``), and the constants connectors share."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

FRAME_NORMS = ("none", "layer", "global")
# below this mean pairwise cosine distance between clips' mean audio tokens, a query-pooling mapper has
# collapsed (a new 2-layer mapper gives ~0.5, a collapsed one < 0.01)
COLLAPSE_DIVERSITY = 0.05


class Connector(nn.Module):
    """The interface every connector implements: ``forward(frames, mask) -> (tokens, token_mask)``,
    with ``frames`` the encoder's last layer (B, T, D), or every layer (B, L, T, D) when ``every_layer``.

    A clip's valid tokens (``tokens[token_mask]``, in order) fill the prompt's audio placeholders, group
    after group. Two optional abilities, declared by class attributes:

    - ``reads_embeddings``: ``forward`` also takes ``embeddings`` (the LLM's input-embedding module) and
      ``blocked_ids`` (token ids it must never emit), for connectors that write LLM tokens;
    - ``masks_slots``: ``forward`` returns a third tensor, ``attend`` (B, N): which of the placeholder
      slots hold a token the LLM should read; the others are masked from attention (a connector whose
      token count is known only after it runs fills a fixed number of slots from the left).
    """

    name: ClassVar[str]
    groups: ClassVar[tuple[str, ...]] = ("",)  # named places of the prompt taking audio tokens
    every_layer: ClassVar[bool] = False  # reads every encoder layer (so caches keep them all)
    scaled_output: ClassVar[bool] = False  # tokens RMS-normalised to ``mapper_output_scale``
    reads_embeddings: ClassVar[bool] = False  # forward(frames, mask, embeddings=, blocked_ids=)
    masks_slots: ClassVar[bool] = False  # forward returns (tokens, token_mask, attend)

    @classmethod
    def num_tokens(cls, encoder_frames: int, num_queries: int, stack_factor: int) -> int:
        """Audio tokens made from ``encoder_frames`` valid frames, in each of ``groups``."""
        return -(-encoder_frames // stack_factor)

    @classmethod
    def token_counts(cls, encoder_frames: int, num_queries: int, stack_factor: int) -> tuple[int, ...]:
        """Placeholder slots of each group (``groups``) for a clip of ``encoder_frames`` valid frames."""
        return (cls.num_tokens(encoder_frames, num_queries, stack_factor),) * len(cls.groups)

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

    def freeze_untrainable(self) -> None:
        """Freeze the parameters no LLM loss reaches (a built or loaded model calls it; DDP needs every
        trainable parameter to get a gradient)."""

    def pop_kl(self) -> torch.Tensor | None:
        """The KL term of the last forward (variational connectors), forgotten once read."""
        return None


__all__ = ["COLLAPSE_DIVERSITY", "FRAME_NORMS", "Connector"]
