"""What the recipes' trainers share about optimisation: learning rates of their own for the LoRA
adapters and for a speaker-prosody head."""

from __future__ import annotations

import re

# parameter names -> which own rate they take (the attribute of the mixin naming it)
OWN_RATES = (
    ("lora_learning_rate", re.compile(r"lora_")),
    ("prosody_learning_rate", re.compile(r"(^|\.)prosody\.")),
    ("speaker_adversary_learning_rate", re.compile(r"(^|\.)speaker_adversary\.")),
)


class LoraLearningRateMixin:
    """A ``Trainer`` mixin: with ``lora_learning_rate`` (or ``prosody_learning_rate``) set, the stock
    optimizer's LoRA adapters (the ``prosody`` module's parameters) move to parameter groups of their
    own at that rate (the rest, e.g. a connector or a classification head, keep ``--learning_rate``;
    the scheduler scales every group alike). A new module trained from scratch next to a pretrained
    LLM wants a higher rate than the LLM's adapters: at one rate for both, 1e-3 wrecked SmolLM2's
    transcripts and 1e-4 barely moves a new head in 90 steps. A small head over ten prosody numbers
    beside a projector wants a higher rate than the projector's (README: speaker prosody); so does a
    speaker adversary that must name its speakers before its guess says anything (``speaker_adversary_
    learning_rate``)."""

    lora_learning_rate: float | None = None
    prosody_learning_rate: float | None = None
    speaker_adversary_learning_rate: float | None = None

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        rates = [
            (getattr(self, name), pattern) for name, pattern in OWN_RATES if getattr(self, name) is not None
        ]
        if not rates:
            return optimizer
        model = self.model if model is None else model
        extra = []
        for rate, pattern in rates:
            own = {id(p) for n, p in model.named_parameters() if pattern.search(n) and p.requires_grad}
            for group in list(optimizer.param_groups):
                mine = [p for p in group["params"] if id(p) in own]
                if mine:
                    group["params"] = [p for p in group["params"] if id(p) not in own]
                    extra.append({**group, "params": mine, "lr": rate})
        optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["params"]]
        for group in extra:
            optimizer.add_param_group(group)
        return optimizer


__all__ = ["LoraLearningRateMixin"]
