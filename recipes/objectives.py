"""The audio-LLM recipes' one training objective, and the schedules of its weights.

:class:`AudioLLMObjective` turns any batch the audio-LLM collator makes into a loss:

- SER-only prompts scored over the labels (``class_labels``): ``classification_loss`` over the
  labels' scores (e.g. class-weighted, from ``modeling/losses.py``; plain cross-entropy by default);
- answers (ASR, "| ASR: <t> | Emotion: <label>", descriptors): the LM loss with the transcript tokens
  (``asr_token_mask``) weighted by ``asr_weight``, plus ``joint_label_weight`` times the classification
  loss over the labels' scores where a joint answer writes its label (``joint_class_labels``: the
  transcript_conditioned readout), plus ``direct_label_weight`` times the same loss over the labels'
  scores at the answer's first token (the label_logits readout, trained in the joint answer's own
  forward: restricted to the labels, it does not compete with the LM loss's "|" there);
- class ids for a classifier head (1-D ``labels``): ``classification_loss`` over its logits;

and adds ``kl_weight`` times the variational connector's KL term. The loss settings live here, not in
the model's config: the model's ``forward`` returns plain cross-entropy losses. It keeps each
micro-batch's mean (the models say ``accepts_loss_kwargs = False``, so the Trainer divides by the
accumulation steps).

:class:`WeightSchedule` is a ``TrainerCallback`` that sets a weight from the training progress before
every step (EmoSLLM's decreasing ASR weight, the descriptor system's KL beta) with :func:`anneal`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import TrainerCallback

SCHEDULES = ("constant", "linear", "cosine", "exponential")


def anneal(progress: float, start: float, end: float, schedule: str) -> float:
    """A loss weight at ``progress`` in [0, 1] of training, from ``start`` to ``end``: "constant",
    "linear", "cosine" (in value) or "exponential" (evenly in log space: 1 -> 1e-2 -> 1e-4 at 0, 1/2, 1).
    EmoSLLM's decreasing ASR weight and the descriptor system's KL beta are both schedules of it."""
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return start
    if schedule == "linear":
        return start + (end - start) * progress
    if schedule == "cosine":
        return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "exponential":
        if start <= 0 or end <= 0:
            raise ValueError(f"the exponential schedule needs start and end > 0, got {start} and {end}")
        return math.exp(math.log(start) + (math.log(end) - math.log(start)) * progress)
    raise ValueError(f"unknown schedule {schedule!r}; expected one of {SCHEDULES}")


def unwrap(model):
    """The model inside a DDP (or DataParallel) wrapper."""
    return getattr(model, "module", model)


@dataclass
class AudioLLMObjective:
    """The loss of one audio-LLM batch (see the module's docstring). ``asr_weight``, ``kl_weight`` and
    ``joint_label_weight`` may be changed between steps (a :class:`WeightSchedule` does)."""

    asr_weight: float = 1.0  # the transcript tokens' weight in answers (1: the plain LM loss)
    joint_label_weight: float = 0.0  # 0: joint answers train with the LM loss alone (EmoSLLM)
    direct_label_weight: float = 0.0  # joint answers: the labels' scores at the answer's start (label_logits)
    kl_weight: float = 0.0  # beta of the variational connector's KL term ("vae_ib"; recipes anneal it)
    # over the labels' scores or a head's logits: (B, C) logits, (B,) class ids -> loss. None: plain CE
    classification_loss: torch.nn.Module | None = None

    def __post_init__(self):
        weights = {"asr_weight": self.asr_weight, "joint_label_weight": self.joint_label_weight}
        weights["direct_label_weight"] = self.direct_label_weight
        weights["kl_weight"] = self.kl_weight
        if any(value < 0 for value in weights.values()):
            raise ValueError(f"the objective's weights must be >= 0, got {weights}")

    def __call__(self, model, inputs: dict, return_outputs: bool = False):
        inputs = dict(inputs)
        joint_classes = inputs.pop("joint_class_labels", None)
        joint_positions = inputs.pop("joint_label_positions", None)
        asr_mask = inputs.pop("asr_token_mask", None)
        labels, classes = inputs.get("labels"), inputs.get("class_labels")
        if classes is not None:  # the labels' scores of a SER-only prompt
            outputs = model(**inputs)
            loss = self.classify(outputs.logits, classes)
        elif labels is not None and labels.ndim == 1:  # a classifier head: the logits as trained
            outputs = model(**inputs, calibrated=False)
            loss = self.classify(outputs.logits, labels)
        elif labels is None:
            outputs = model(**inputs)
            loss = outputs.loss
        else:
            labels = inputs.pop("labels")
            # the LM head only where the answers are (left padding: the last positions of every row);
            # over a ~50k vocabulary the logits of the prompt and audio tokens cost a third of a step
            keep = answer_window(labels)
            outputs = model(**inputs, logits_to_keep=keep)
            if joint_positions is not None:
                joint_positions = joint_positions.to(labels.device) - (labels.shape[1] - keep)
            labels = labels[:, -keep:]
            asr_mask = asr_mask[:, -keep:] if asr_mask is not None else None
            loss = self.answer_loss(outputs.logits, labels, asr_mask)
            if joint_classes is not None and self.joint_label_weight:
                loss = loss + self.joint_label_weight * self.joint_label_loss(
                    unwrap(model), outputs.logits, joint_positions, joint_classes
                )
            if joint_classes is not None and self.direct_label_weight:
                loss = loss + self.direct_label_weight * self.direct_label_loss(
                    unwrap(model), outputs.logits, labels, joint_classes
                )
        loss = self.add_kl_term(unwrap(model), loss)
        return (loss, outputs) if return_outputs else loss

    def classify(self, logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """``classification_loss`` (plain cross-entropy when None) of (B, C) ``logits``."""
        classes = classes.to(logits.device).long()
        if self.classification_loss is None:
            return torch.nn.functional.cross_entropy(logits.float(), classes)
        return self.classification_loss.to(logits.device)(logits.float(), classes)

    def add_kl_term(self, model, loss):
        """``loss`` + ``kl_weight`` * KL of the variational connector's last forward, in training
        ("vae_ib"); the connector forgets the term once read. Other connectors: ``loss`` unchanged."""
        kl = model.connector.pop_kl() if hasattr(model, "connector") else None
        if loss is None or not model.training or kl is None or not self.kl_weight:
            return loss
        return loss + self.kl_weight * kl.to(loss.dtype)

    def answer_loss(self, logits, labels, asr_mask=None) -> torch.Tensor:
        """Mean next-token cross-entropy over the answer tokens, the transcript's weighted."""
        logits, targets = logits[:, :-1].float(), labels[:, 1:]
        token_loss = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), targets, ignore_index=-100, reduction="none"
        )
        weights = (targets != -100).float()
        if asr_mask is not None:
            weights = weights * torch.where(asr_mask[:, 1:].bool(), self.asr_weight, 1.0)
        return (token_loss * weights).sum() / weights.sum().clamp_min(1e-8)

    def joint_label_loss(self, model, logits, positions, classes) -> torch.Tensor:
        """``classification_loss`` (class-weighted in the recipes) over the labels' scores at the label
        of each joint answer: log p(label's first token | audio, prompt, "| ASR: <t> | Emotion:"), the
        transcript teacher-forced; what the transcript_conditioned mode reads (the same label ids)."""
        return self.classify(
            _first_token_scores(logits, positions, model.config.prompt["emotion_label_token_ids"]), classes
        )

    def direct_label_loss(self, model, logits, labels, classes) -> torch.Tensor:
        """``classification_loss`` over the labels' scores where each answer starts: log p(label's
        first token | audio, prompt), the label ids the label_logits mode reads (no "| Emotion:"
        before them). A joint row's prompt asks for the transcript first, so its LM target there is
        "|"; the labels' scores, renormalised among themselves, are free of it."""
        ids = model.config.prompt["label_token_ids"]
        names = list(model.config.labels) or [str(i) for i in range(len(ids))]
        shared = labels_sharing_first_token(names, ids)
        if shared:
            raise ValueError(
                f"direct_label_weight scores each label by its first token, but {shared} share one; "
                "rename those labels or set the weight to 0."
            )
        starts = (labels != -100).int().argmax(1)  # each row's first answer token
        return self.classify(_first_token_scores(logits, starts, ids), classes)


def answer_window(labels: torch.Tensor) -> int:
    """How many last positions of left-padded rows hold every row's answer (``labels`` != -100), plus
    the position before the first answer token, whose logits predict it."""
    answers = labels != -100
    if not answers.any():
        return labels.shape[1]
    first = torch.where(answers.any(1), answers.int().argmax(1), labels.shape[1])
    return int(min(labels.shape[1], labels.shape[1] - int(first.min()) + 1))


def labels_sharing_first_token(labels: list[str], token_ids: list[list[int]]) -> list[list[str]]:
    """The groups of ``labels`` whose token ids (one list per label) start with the same token: the
    label losses on joint answers score each label by its first token, so such labels cannot be told
    apart there."""
    by_first: dict[int, list[str]] = {}
    for label, ids in zip(labels, token_ids):
        by_first.setdefault(ids[0], []).append(label)
    return [names for names in by_first.values() if len(names) > 1]


def _first_token_scores(logits, positions, label_ids: list[list[int]]) -> torch.Tensor:
    """(B, C) log-probabilities of each label's first token at ``positions`` (B,) of the answers:
    read from the logits one position before (next-token prediction)."""
    first = torch.tensor([ids[0] for ids in label_ids], device=logits.device)
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, positions.to(logits.device) - 1].float().log_softmax(-1)[:, first]


class WeightSchedule(TrainerCallback):
    """Sets a weight from the training progress (``global_step / max_steps``) before every step:
    ``apply(schedule(progress))``. ``name`` and the value go into each logged entry with a loss."""

    def __init__(self, name: str, schedule: Callable[[float], float], apply: Callable[[float], None]):
        self.name, self.schedule, self.apply = name, schedule, apply
        self.value: float | None = None

    def _set(self, state) -> None:
        self.value = float(self.schedule(state.global_step / max(state.max_steps, 1)))
        self.apply(self.value)

    def on_train_begin(self, args, state, control, **kwargs):
        self._set(state)  # a resumed run starts from its checkpoint's step

    def on_step_begin(self, args, state, control, **kwargs):
        self._set(state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and "loss" in logs and self.value is not None:
            value = float(f"{self.value:.4g}")
            logs[self.name] = value
            if state.log_history and "loss" in state.log_history[-1]:
                state.log_history[-1][self.name] = value  # the curves read the history


def asr_weight_schedule(objective: AudioLLMObjective, start: float, end: float, schedule: str):
    """EmoSLLM's ASR weight, annealed from ``start`` to ``end`` over a phase (set on ``objective``)."""
    anneal(0.0, start, end, schedule)  # an unknown schedule fails before training

    def apply(value: float) -> None:
        objective.asr_weight = value

    return WeightSchedule("asr_weight", lambda p: anneal(p, start, end, schedule), apply)


def kl_weight_schedule(objective: AudioLLMObjective, beta: Callable[[float], float]):
    """The variational connector's KL beta (``objective.kl_weight``) as ``beta(progress)``."""

    def apply(value: float) -> None:
        objective.kl_weight = value

    return WeightSchedule("kl_weight", beta, apply)


__all__ = [
    "SCHEDULES",
    "AudioLLMObjective",
    "WeightSchedule",
    "anneal",
    "answer_window",
    "labels_sharing_first_token",
    "asr_weight_schedule",
    "kl_weight_schedule",
]
