"""Building blocks shared by serhub's model families. Every module is mask-aware: padding never
changes a result, so a padded batch gives the same outputs as one example at a time."""

from __future__ import annotations

import math

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

    def hidden(self, pooled: torch.Tensor) -> torch.Tensor:
        """The hidden layer the output projection reads (dropout applied in training)."""
        return self.dropout(self.activation(self.dense(self.dropout(pooled))))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.hidden(pooled))


class SpeakerAdversary(nn.Module):
    """Which training speaker said a clip, predicted from the classification head's hidden layer, and
    a loss that keeps the head from telling it (speaker-adversarial SER): the adversary learns to name
    the speaker from the hidden layer as it is (its input detached), and the head is trained, through
    the adversary's frozen weights, towards hidden layers from which the adversary's guess is uniform
    over the speakers (the domain-confusion loss of Tzeng et al., ICCV 2015). Unlike a gradient
    reversal, which rewards a confidently *wrong* speaker, this rewards telling nothing. Training only."""

    def __init__(self, input_size: int, hidden_size: int, num_speakers: int):
        super().__init__()
        self.classifier = ClassificationHead(input_size, hidden_size, num_speakers, dropout=0.0)

    def _frozen_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        c = self.classifier
        x = c.activation(nn.functional.linear(hidden, c.dense.weight.detach(), c.dense.bias.detach()))
        return nn.functional.linear(x, c.out_proj.weight.detach(), c.out_proj.bias.detach())

    def forward(self, hidden: torch.Tensor, speaker_ids: torch.Tensor, weight: float) -> torch.Tensor:
        """The adversary's speaker cross-entropy (which trains only it) plus ``weight`` times the
        head's confusion loss (the divergence of the adversary's guess from a uniform speaker, which
        trains only what wrote ``hidden``), over the clips with a training speaker (labels >= 0;
        -100 marks the others); 0 when none has one."""
        known = speaker_ids >= 0
        if not bool(known.any()):
            return hidden.sum() * 0.0
        hidden = hidden[known]
        naming = nn.functional.cross_entropy(
            self.classifier(hidden.detach()).float(), speaker_ids[known].long()
        )
        # KL(uniform || the adversary's guess): 0 when the hidden layer tells nothing of the speaker
        logp = self._frozen_logits(hidden).float().log_softmax(-1)
        confusion = -logp.mean(-1).mean() - math.log(logp.shape[-1])
        return naming + weight * confusion


class SpeakerRelativeProsody(nn.Module):
    """The pooled vector projected to ``pooled_size`` numbers, beside a clip's ten measured prosody
    numbers minus the speaker's reference, standardised: B, P + B, 10 (+ reference) -> B, pooled_size + 10.
    With ``pooled_input_size=0`` there is no pooled vector: B, 10 (+ reference) -> B, 10.

    Buffers (saved with the model, set from the training split by ``set_statistics``): ``fill``, what a
    missing (NaN) number is replaced with; ``mean`` / ``std`` of the relative numbers in training;
    ``population_reference``, the training voices' average reference, used when no speaker's is given.
    """

    def __init__(self, pooled_input_size: int, pooled_size: int, num_numbers: int = 10):
        super().__init__()
        self.pooled_projection = (
            nn.Linear(pooled_input_size, pooled_size) if pooled_input_size and pooled_size else None
        )
        self.register_buffer("fill", torch.zeros(num_numbers))
        self.register_buffer("mean", torch.zeros(num_numbers))
        self.register_buffer("std", torch.ones(num_numbers))
        self.register_buffer("population_reference", torch.zeros(num_numbers))

    @property
    def output_size(self) -> int:
        pooled = self.pooled_projection.out_features if self.pooled_projection is not None else 0
        return pooled + self.fill.numel()

    @torch.no_grad()
    def set_statistics(self, fill, mean, std, population_reference) -> None:
        for name, value in (
            ("fill", fill),
            ("mean", mean),
            ("std", std),
            ("population_reference", population_reference),
        ):
            value = torch.as_tensor(value, dtype=torch.float32)
            if value.shape != self.fill.shape or not torch.isfinite(value).all():
                raise ValueError(
                    f"prosody {name}: {tuple(self.fill.shape)} finite numbers expected, found {value}"
                )
            getattr(self, name).copy_(value.clamp_min(1e-3) if name == "std" else value)

    def filled(self, values: torch.Tensor) -> torch.Tensor:
        """NaN numbers (too few voiced frames for an F0 figure) replaced by ``fill``."""
        values = values.to(self.fill.dtype)
        return torch.where(torch.isnan(values), self.fill.expand_as(values), values)

    @torch.no_grad()
    def reference_of(self, prosody_values: torch.Tensor | None) -> torch.Tensor:
        """A speaker's reference: the mean of their reference clips' (B, 10) ``prosody_values`` (what
        ``enroll_speaker`` keeps), refused when absent or when no clip holds voiced speech."""
        if prosody_values is None:
            raise ValueError(
                "this model reads prosody relative to the speaker: enroll_speaker needs the reference clips' "
                "prosody_values (pass everything its feature extractor returns)"
            )
        if prosody_values.ndim != 2 or prosody_values.shape[-1] != self.fill.numel():
            raise ValueError(
                f"prosody_values: (clips, {self.fill.numel()}) numbers expected, found {tuple(prosody_values.shape)}"
            )
        if torch.isnan(prosody_values[:, 0]).all():  # no F0 measured in any reference clip
            raise ValueError(
                "the reference clips hold no voiced speech (no pitch could be measured in any of them): "
                "enrol the speaker on recordings of them speaking, a few seconds each"
            )
        return self.filled(prosody_values.detach().float()).mean(0)

    def relative(self, values: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        """(B, 10) numbers minus the reference (the training voices' average when None), standardised.
        A NaN in the reference means none for that clip: its own number stands in (relative 0)."""
        if values.ndim != 2 or values.shape[-1] != self.fill.numel():
            raise ValueError(
                f"prosody_values: (batch, {self.fill.numel()}) numbers per clip expected, found {tuple(values.shape)}"
            )
        values = self.filled(values.to(self.fill.device))
        reference = self.population_reference if reference is None else reference.to(self.fill)
        reference = torch.where(torch.isnan(reference), values, reference.expand_as(values))
        return (values - reference - self.mean) / self.std

    def forward(
        self, pooled: torch.Tensor | None, values: torch.Tensor, reference: torch.Tensor | None
    ) -> torch.Tensor:
        relative = self.relative(values, reference)
        if self.pooled_projection is None:
            return relative
        return torch.cat([self.pooled_projection(pooled), relative.to(pooled.dtype)], dim=-1)


class ProsodyLabelScores(nn.Module):
    """Label scores from a clip's prosody relative to its speaker, for a model whose own scores come
    from elsewhere (an audio-LLM's label log-likelihoods): B, 10 (+ reference) -> B, C, added to them.
    ``SpeakerRelativeProsody`` (without a pooled vector) then Linear -> GELU -> Linear; the last layer
    starts at zero, so a new model scores as it would without it.

    ``reference_dropout`` p > 0: in training each clip's reference is withheld with probability p (the
    clip's own numbers stand in: the prosody says nothing), as dropout does; in use a clip with no
    reference is read the same way, not against the training voices' average."""

    def __init__(
        self, num_labels: int, hidden_size: int = 32, num_numbers: int = 10, reference_dropout: float = 0.0
    ):
        super().__init__()
        self.prosody = SpeakerRelativeProsody(0, 0, num_numbers)
        self.dense = nn.Linear(num_numbers, hidden_size)
        self.activation = nn.GELU()
        self.out_proj = nn.Linear(hidden_size, num_labels)
        self.out_proj.zero_init = True  # the models' _init_weights starts it at zero
        self.reference_dropout = reference_dropout

    def set_statistics(self, fill, mean, std, population_reference) -> None:
        self.prosody.set_statistics(fill, mean, std, population_reference)

    def reference_of(self, prosody_values: torch.Tensor | None) -> torch.Tensor:
        return self.prosody.reference_of(prosody_values)

    def forward(self, values: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        if self.reference_dropout > 0 and (reference is None or self.training):
            none = torch.full(values.shape, float("nan"), device=values.device)  # NaN: no reference
            if reference is None:
                reference = none
            else:
                dropped = torch.rand(values.shape[0], 1, device=values.device) < self.reference_dropout
                reference = torch.where(dropped, none, reference.to(none).expand_as(none))
        relative = self.prosody(None, values, reference).to(self.dense.weight.dtype)
        return self.out_proj(self.activation(self.dense(relative)))


def stack_frames(frames: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` consecutive frames side by side: B, T, D -> B, ceil(T/k), k*D (padding frames zeroed),
    and the tokens' mask (a token is valid when any of its frames is)."""
    b, t, d = frames.shape
    pad = (-t) % k
    frames = nn.functional.pad(frames * mask[..., None].to(frames.dtype), (0, 0, 0, pad))
    mask = nn.functional.pad(mask, (0, pad))
    return frames.reshape(b, (t + pad) // k, k * d), mask.reshape(b, -1, k).any(-1)


class RunningFrameNorm(nn.Module):
    """Per-channel standardisation of encoder frames, (x - mean) / std, with the statistics
    accumulated over every valid frame seen in training (a cumulative average: BatchNorm with
    ``momentum=None``, but mask-aware, and applied with the running statistics in training as in
    inference, so both see the same map and a padded batch equals one clip at a time).
    Before any training it is the identity. B, T, D -> B, T, D."""

    def __init__(self, size: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("running_mean", torch.zeros(size))
        self.register_buffer("running_var", torch.ones(size))
        self.register_buffer("num_frames", torch.zeros((), dtype=torch.long))  # integer: survives .to(bf16)

    @torch.no_grad()
    def update(self, frames: torch.Tensor, mask: torch.Tensor) -> None:
        valid = frames[mask.bool()].float()  # N, D
        n, seen = valid.shape[0], int(self.num_frames)
        if n == 0:
            return
        total = seen + n
        mean, var = valid.mean(0), valid.var(0, unbiased=False)
        delta = mean - self.running_mean.float()
        # Chan et al.'s parallel update of mean and variance
        self.running_var.copy_(
            (self.running_var.float() * seen + var * n + delta.pow(2) * seen * n / total) / total
        )
        self.running_mean.add_(delta * n / total)
        self.num_frames.fill_(total)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, update: bool | None = None) -> torch.Tensor:
        """``update``: gather these frames' statistics (default: in training)."""
        if self.training if update is None else update:
            self.update(frames, mask)
        mean, var = self.running_mean.to(frames.dtype), self.running_var.to(frames.dtype)
        return (frames - mean) * torch.rsqrt(var + self.eps)


def frame_norm_layer(kind: str, size: int) -> nn.Module | None:
    """The connectors' frame normalisation: "global" (``RunningFrameNorm``), "layer" (LayerNorm per
    frame) or "none" (None)."""
    return {"layer": nn.LayerNorm(size), "global": RunningFrameNorm(size)}.get(kind)


def normalise_frames(norm: nn.Module | None, frames: torch.Tensor, mask: torch.Tensor, update=None):
    """``frames`` through ``frame_norm_layer``'s module (``update``: a RunningFrameNorm gathers these
    frames' statistics; default: in training)."""
    if isinstance(norm, RunningFrameNorm):
        return norm(frames, mask, update=update)
    return frames if norm is None else norm(frames)


def score_labels(
    language_model, embeds, attention_mask, positions, label_ids: list[list[int]]
) -> torch.Tensor:
    """log p(label | prompt) for every label: (B, C), from a causal LM's next-token distribution after
    a left-padded prompt (so the last position is every row's answer position). Multi-token labels
    use their full likelihood: each row's KV cache is copied once per label and continued with the
    label's tokens. Shared by the audio-LLM and text-LLM classifiers (THAU's label scoring)."""
    out = language_model(
        inputs_embeds=embeds,
        attention_mask=attention_mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
    )
    first = out.logits[:, -1].float().log_softmax(-1)  # left padding: the last position is the answer's
    scores = torch.stack([first[:, ids[0]] for ids in label_ids], dim=-1)  # B, C
    longest = max(len(ids) for ids in label_ids)
    if longest == 1:
        return scores
    # continue every row with each label's tokens 0..k-2 on a copy of the prompt's cache; the
    # output at continuation position j predicts token j+1 of the label
    b, c = embeds.shape[0], len(label_ids)
    inputs = torch.zeros(c, longest - 1, dtype=torch.long, device=embeds.device)
    targets = torch.zeros(c, longest - 1, dtype=torch.long, device=embeds.device)
    valid = torch.zeros(c, longest - 1, dtype=torch.long, device=embeds.device)
    for j, ids in enumerate(label_ids):
        inputs[j, : len(ids) - 1] = torch.tensor(ids[:-1])
        targets[j, : len(ids) - 1] = torch.tensor(ids[1:])
        valid[j, : len(ids) - 1] = 1
    cache = out.past_key_values
    cache.batch_repeat_interleave(c)
    mask = torch.cat([attention_mask.repeat_interleave(c, 0), valid.repeat(b, 1)], 1)
    cont_positions = (
        positions[:, -1:].repeat_interleave(c, 0) + 1 + torch.arange(longest - 1, device=embeds.device)
    )
    logp = (
        language_model(
            input_ids=inputs.repeat(b, 1),
            attention_mask=mask,
            position_ids=cont_positions,
            past_key_values=cache,
            use_cache=True,
        )
        .logits.float()
        .log_softmax(-1)
    )  # B*C, k-1, V
    rest = (logp.gather(-1, targets.repeat(b, 1)[..., None]).squeeze(-1) * valid.repeat(b, 1)).sum(-1)
    return scores + rest.view(b, c)


__all__ = [
    "AttentiveStatisticsPooling",
    "ClassificationHead",
    "ProsodyLabelScores",
    "RunningFrameNorm",
    "SpeakerAdversary",
    "SpeakerRelativeProsody",
    "WeightedLayerSum",
    "score_labels",
    "stack_frames",
]
