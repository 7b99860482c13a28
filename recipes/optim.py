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


def train_connector_steps(
    model, dataset, steps: int, parameters: list, loss_of, *, batch_size: int = 16,
    learning_rate: float = 1e-3, weight_decay: float = 0.0, warmup: int = 10, seed: int = 0,
    log_every: int = 25, loss_name: str = "loss", callback=None, log=None,
) -> list[dict]:  # fmt: skip
    """The loop of a cheap phase 0 that trains a connector without the LLM (the CTC and descriptor
    alignments): ``steps`` AdamW steps on ``parameters`` (linear warm-up over ``warmup`` steps, then a
    cosine to 0; gradients clipped at norm 1), over ``dataset`` in shuffled batches of ``batch_size``
    rows without replacement (a fresh shuffle each pass). ``loss_of(rows) -> (loss, parts)``, parts a
    dict of floats. Returns the log: at every ``log_every``-th step and the last, the step, the loss
    (as ``loss_name``), the parts, the seconds of training so far (``callback``'s time left out), and
    ``callback(step)``'s dict, run with the connector in eval mode. ``log(entry)`` sees each entry."""
    import math
    import random
    import time

    import torch

    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0))),
    )
    rng, order, history, start, measuring = random.Random(seed), [], [], time.time(), 0.0
    model.connector.train()
    for step in range(1, steps + 1):
        if len(order) < batch_size:
            fresh = list(range(len(dataset)))
            rng.shuffle(fresh)
            order += fresh
        rows = [dataset[i] for i in order[:batch_size]]
        del order[:batch_size]
        loss, parts = loss_of(rows)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        if step % log_every == 0 or step == steps:
            entry = {"step": step, loss_name: round(float(loss.detach()), 4)}
            entry.update({k: round(v, 4) for k, v in parts.items()})
            entry["seconds"] = round(time.time() - start - measuring, 1)  # training alone
            if callback is not None:
                model.connector.eval()
                began = time.time()
                entry.update(callback(step))
                measuring += time.time() - began
                model.connector.train()
            history.append(entry)
            if log is not None:
                log(entry)
    model.connector.eval()
    return history


__all__ = ["LoraLearningRateMixin", "train_connector_steps"]
