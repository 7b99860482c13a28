"""The CTC-path connector: the words a CTC head hears, given to the LLM as its own token embeddings,
beside QPMapper tokens for how they were said.

    frames (B, T, D) -> k frames stacked -> linear -> (B, N, H) -> cosine with [blank; E] -> best path
    best path: blanks dropped, repeats merged -> token ids -> E[ids], left-aligned in the N "words" slots
    frames -> QueryPoolingMapper -> (B, Q, H) "voice" tokens

The LLM reads the words as text it already knows (LegoSLM, Ma et al. 2025, arXiv:2505.11352;
Speech-LLaMA's CTC compressor, Wu et al. 2023, arXiv:2307.03917), so learning to transcribe costs a
few LoRA steps of copying instead of thousands of alignment steps; what the words leave out (tone,
loudness, tempo) reaches it through the voice tokens. A clip's path is shorter than its N = ceil(T/k)
slots: the unused slots are masked from attention (``masks_slots``), so the prompt keeps the length the
processor gave it before the audio was heard.

The words slots carry no gradient (the path is an argmax): the projector and the head (``blank``,
``log_scale``) train with CTC against the frozen embeddings (``recipes/ctc_alignment.py``, emosllm's
phase 0) and the voice tokens with the LLM's losses.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .connector_base import Connector
from .layers import stack_frames
from .query_pooling import QueryPoolingMapper

BLANK = 0  # CTC index of the blank; token id t of the LLM is index t + 1
CTC_INITIAL_SCALE = 40.0  # over a ~50k vocabulary a target needs a margin of about log(50k) = 11


def embedding_ctc_logits(
    tokens: torch.Tensor,
    embeddings: torch.Tensor,
    blank: torch.Tensor,
    log_scale: torch.Tensor,
    blocked_ids=(),
    vocabulary: torch.Tensor | None = None,
) -> torch.Tensor:
    """CTC logits of ``tokens`` (B, N, H) against the LLM's input embeddings (V, H) and a blank
    direction: scaled cosines, (B, N, V + 1), blank first. ``blocked_ids`` can never win.
    ``vocabulary`` (K,) sorted token ids: score only those, (B, N, K + 1), index i + 1 being
    ``vocabulary[i]`` (a sampled softmax for training; decoding scores every token)."""
    if vocabulary is not None:
        embeddings = embeddings[vocabulary.to(embeddings.device)]
    directions = nn.functional.normalize(
        torch.cat([blank[None].float(), embeddings.detach().float()]), dim=-1
    )
    logits = log_scale.exp() * nn.functional.normalize(tokens.float(), dim=-1) @ directions.T
    if len(blocked_ids):  # finite: CTC's gradient is NaN where a log-probability is -inf
        blocked = torch.as_tensor(list(blocked_ids), device=logits.device)
        if vocabulary is not None:
            blocked = torch.nonzero(torch.isin(vocabulary.to(logits.device), blocked)).flatten()
        logits[..., blocked + 1] = -1e4
    return logits


def collapse_best_path(best: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best CTC indices (B, N) of the valid steps -> token ids left-aligned (B, N) and which are used
    (B, N): blanks dropped, repeats merged, order kept."""
    previous = nn.functional.pad(best[:, :-1], (1, 0), value=BLANK)
    keep = valid & (best != BLANK) & (best != previous)
    # stable sort on "not kept": the kept steps first, in their order
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices
    ids = (best.gather(1, order) - 1).clamp_min(0)
    return ids, keep.gather(1, order)


def given_words(ids, used, slots, words) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of ``words`` (B, W; -1 padded) that hold tokens replace those rows' path (left-aligned,
    cut to their slots); the other rows keep theirs."""
    n = ids.shape[1]
    words = nn.functional.pad(words, (0, max(0, n - words.shape[1])), value=-1)[:, :n]
    given = words >= 0
    replace = given.any(1, keepdim=True)
    ids = torch.where(replace, words.clamp_min(0), ids)
    used = torch.where(replace, given & slots, used)
    return ids, used


class CTCPathConnector(Connector):
    """``ctc_path``: the CTC head's best path as LLM token embeddings ("words", ceil(T/k) slots, the
    unused ones masked) followed by ``num_queries`` QPMapper tokens ("voice")."""

    name = "ctc_path"
    groups = ("words", "voice")
    scaled_output = True  # the voice tokens (the words are the LLM's own embeddings)
    reads_embeddings = True
    masks_slots = True

    @classmethod
    def token_counts(cls, encoder_frames: int, num_queries: int, stack_factor: int) -> tuple[int, ...]:
        return (-(-encoder_frames // stack_factor), num_queries)

    @classmethod
    def num_tokens(cls, encoder_frames: int, num_queries: int, stack_factor: int) -> int:
        return sum(cls.token_counts(encoder_frames, num_queries, stack_factor))

    @classmethod
    def check_config(cls, config) -> None:
        Connector.check_config(config)
        QueryPoolingMapper.check_config(config)

    @classmethod
    def from_config(cls, config, max_frames: int) -> CTCPathConnector:
        return cls(
            QueryPoolingMapper.from_config(config, max_frames), config.audio_hidden_size, config.stack_factor
        )

    @classmethod
    def describe(cls, config) -> str:
        return (
            f"ctc_path (CTC best path as the LLM's own tokens, {config.stack_factor} frames stacked, "
            f"+ {config.num_queries} QPMapper voice tokens)"
        )

    def __init__(self, voice: QueryPoolingMapper, input_size: int, stack_factor: int = 4):
        super().__init__()
        self.stack_factor = stack_factor
        output_size = voice.out_proj.out_features
        self.proj = nn.Linear(input_size * stack_factor, output_size)
        self.blank = nn.Parameter(torch.randn(output_size) * 0.02)
        self.log_scale = nn.Parameter(torch.tensor(math.log(CTC_INITIAL_SCALE)))
        self.voice = voice

    def ctc_head_parameters(self) -> list[nn.Parameter]:
        """What CTC trains (phase 0): the projector, the blank and the scale."""
        return [*self.proj.parameters(), self.blank, self.log_scale]

    def freeze_untrainable(self) -> None:
        # the words are an argmax: no LLM loss reaches the CTC head, which only CTC trains
        for parameter in self.ctc_head_parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def start_blank_from(self, embeddings: torch.Tensor) -> None:
        """The blank starts along the embeddings' mean direction (what phase 0 starts from)."""
        self.blank.copy_(nn.functional.normalize(embeddings.detach().float().mean(0), dim=0).to(self.blank))
        self.log_scale.fill_(math.log(CTC_INITIAL_SCALE))

    def ctc_logits(
        self,
        frames: torch.Tensor,
        mask: torch.Tensor,
        embeddings: torch.Tensor,
        blocked_ids=(),
        vocabulary=None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CTC logits (B, N, V + 1) of each stacked step (``vocabulary``: over those token ids only,
        see :func:`embedding_ctc_logits`), and the steps' mask (B, N)."""
        stacked, step_mask = stack_frames(frames, mask, self.stack_factor)
        logits = embedding_ctc_logits(
            self.proj(stacked), embeddings, self.blank, self.log_scale, blocked_ids, vocabulary
        )
        return logits, step_mask

    def forward(
        self,
        frames: torch.Tensor,
        mask: torch.Tensor,
        embeddings: nn.Embedding | None = None,
        blocked_ids=(),
        words: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``words`` (B, W), -1 padded (training only): token ids that replace a row's CTC words
        (copy training); a row of -1 keeps its own."""
        if embeddings is None:
            raise ValueError("the ctc_path connector writes LLM tokens: pass the LLM's input embeddings")
        with torch.no_grad():
            logits, slots = self.ctc_logits(frames, mask, embeddings.weight, blocked_ids)
            ids, used = collapse_best_path(logits.argmax(-1), slots)
            if words is not None:
                ids, used = given_words(ids, used, slots, words.to(ids.device))
        words = embeddings(ids) * used[..., None].to(embeddings.weight.dtype)
        voice, voice_mask = self.voice(frames, mask)
        tokens = torch.cat([words.to(voice.dtype), voice], 1)
        return tokens, torch.cat([slots, voice_mask], 1), torch.cat([used & slots, voice_mask], 1)

    @torch.no_grad()
    def best_path_ids(self, frames, mask, embeddings: torch.Tensor, blocked_ids=()) -> list[list[int]]:
        """Each clip's best path as LLM token ids (what the words slots hold)."""
        logits, slots = self.ctc_logits(frames, mask, embeddings, blocked_ids)
        ids, used = collapse_best_path(logits.argmax(-1), slots)
        return [row[keep].tolist() for row, keep in zip(ids, used)]


__all__ = ["BLANK", "CTCPathConnector", "collapse_best_path", "embedding_ctc_logits", "given_words"]
