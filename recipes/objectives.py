"""The audio-LLM recipes' one training objective, and the schedules of its weights.

:class:`AudioLLMObjective` turns any batch the audio-LLM collator makes into a loss:

- SER-only prompts scored over the labels (``class_labels``): the model's own classification loss;
- answers (ASR, "| ASR: <t> | Emotion: <label>", descriptors): the LM loss with the transcript tokens
  (``asr_token_mask``) weighted by ``asr_weight``, plus ``joint_label_weight`` times the classification
  loss over the labels' scores where a joint answer writes its label (``joint_class_labels``);
- class ids for a classifier head (1-D ``labels``): the model's loss;

and adds the variational connector's KL term. It keeps each micro-batch's mean (the models say
``accepts_loss_kwargs = False``, so the Trainer divides by the accumulation steps).

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
    """The loss of one audio-LLM batch (see the module's docstring). ``asr_weight`` and
    ``joint_label_weight`` may be changed between steps (a :class:`WeightSchedule` does)."""

    asr_weight: float = 1.0  # the transcript tokens' weight in answers (1: the plain LM loss)
    joint_label_weight: float = 0.0  # 0: joint answers train with the LM loss alone (EmoSLLM)

    def __post_init__(self):
        if self.asr_weight < 0 or self.joint_label_weight < 0:
            raise ValueError(
                f"asr_weight ({self.asr_weight}) and joint_label_weight ({self.joint_label_weight}) "
                "must be >= 0"
            )

    def __call__(self, model, inputs: dict, return_outputs: bool = False):
        inputs = dict(inputs)
        joint_classes = inputs.pop("joint_class_labels", None)
        joint_positions = inputs.pop("joint_label_positions", None)
        asr_mask = inputs.pop("asr_token_mask", None)
        labels = inputs.get("labels")
        if "class_labels" in inputs or labels is None or labels.ndim == 1:
            outputs = model(**inputs)  # the model's own loss (labels' scores, or a classifier head)
            return (outputs.loss, outputs) if return_outputs else outputs.loss
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = self.answer_loss(outputs.logits, labels, asr_mask)
        if joint_classes is not None and self.joint_label_weight:
            loss = loss + self.joint_label_weight * self.joint_label_loss(
                unwrap(model), outputs.logits, joint_positions, joint_classes
            )
        loss = unwrap(model).add_kl_term(loss)  # no labels went in: the model added no KL term
        return (loss, outputs) if return_outputs else loss

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

    @staticmethod
    def joint_label_loss(model, logits, positions, classes) -> torch.Tensor:
        """The model's classification loss (class-weighted by default) over the labels' scores at the
        label of each joint answer: log p(label's first token | audio, prompt, "| ASR: <t> | Emotion:"),
        the transcript teacher-forced; what the transcript_conditioned mode reads (the same label ids)."""
        first = [ids[0] for ids in model.config.prompt["emotion_label_token_ids"]]
        rows = torch.arange(logits.shape[0], device=logits.device)
        at_label = logits[rows, positions.to(logits.device) - 1].float().log_softmax(-1)  # B, V
        scores = at_label[:, torch.tensor(first, device=logits.device)]  # B, C
        return model.classification_loss().to(scores.device)(scores, classes.to(scores.device).long())


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


def kl_weight_schedule(model, beta: Callable[[float], float]):
    """The variational connector's KL beta (the model's ``config.kl_weight``) as ``beta(progress)``."""

    def apply(value: float) -> None:
        unwrap(model).config.kl_weight = value

    return WeightSchedule("kl_weight", beta, apply)


__all__ = [
    "SCHEDULES",
    "AudioLLMObjective",
    "WeightSchedule",
    "anneal",
    "asr_weight_schedule",
    "kl_weight_schedule",
]
