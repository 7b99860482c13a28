"""How recipes/graph_fusion.py trains and scores one configuration on the cached summaries: AdamW on
what is not frozen, a linear warm-up then cosine schedule, the epoch best on validation macro-F1 kept.
Defined beside the recipe: only it uses them."""

from __future__ import annotations

import copy
import math

import torch
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics
from serhub.modeling import GraphFusionForAudioClassification
from serhub.recipes.graph_fusion_features import batch_of


def _optimizer(trainable: list, training_args, steps: int):
    """AdamW and its schedule: linear warm-up (at most a tenth of the steps), then a cosine decay."""
    optimizer = torch.optim.AdamW(
        trainable, lr=training_args.learning_rate, weight_decay=training_args.weight_decay
    )
    warmup = min(training_args.warmup_steps, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / (warmup + 1) if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))
    )  # fmt: skip
    return optimizer, schedule


def _train_epoch(model, train: dict, order: list[int], batch: int, trainable, optimizer, schedule) -> float:
    """One pass over the cached training split in ``order``; returns the summed loss (per clip)."""
    total = 0.0
    for start in range(0, len(order), batch):
        index = order[start : start + batch]
        out = model.fuse(batch_of(train, index), train["labels"][index])
        optimizer.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        total += out.loss.item() * len(index)
    return total


def train_variant(base_state, config, caches, training_args, seed: int):
    """Train one configuration on the cache; returns the model at its best validation epoch."""
    torch.manual_seed(seed)
    model = GraphFusionForAudioClassification(config)
    model.load_state_dict(base_state, strict=False)  # the frozen parts, shared by every variant
    model.train()
    trainable = [p for n, p in model.named_parameters() if p.requires_grad]
    train, valid = caches["train"], caches["validation"]
    n, batch = len(train["labels"]), training_args.per_device_train_batch_size
    epochs = int(training_args.num_train_epochs)
    optimizer, schedule = _optimizer(trainable, training_args, math.ceil(n / batch) * epochs)
    generator = torch.Generator().manual_seed(seed)
    best, best_state, history = -1.0, None, []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n, generator=generator).tolist()
        total = _train_epoch(model, train, order, batch, trainable, optimizer, schedule)
        score = evaluate(model, valid, config.labels)["macro_f1"]
        history.append({"epoch": epoch + 1, "loss": total / n, "validation_macro_f1": score})
        if score > best:
            best, best_state = (
                score,
                copy.deepcopy({k: v for k, v in model.state_dict().items() if k not in base_state}),
            )
    model.load_state_dict(best_state, strict=False)
    return model.eval(), history


@torch.no_grad()
def predict(model, cache: dict, batch_size: int = 64) -> torch.Tensor:
    model.eval()
    n = len(cache["labels"])
    return torch.cat(
        [
            model.fuse(batch_of(cache, list(range(s, min(n, s + batch_size))))).logits.softmax(-1)
            for s in range(0, n, batch_size)
        ]
    )


def evaluate(model, cache: dict, labels, bootstrap: int = 0, seed: int = 0, probabilities=None) -> dict:
    probabilities = predict(model, cache) if probabilities is None else probabilities
    return classification_metrics(
        [labels[i] for i in probabilities.argmax(-1).tolist()], [labels[i] for i in cache["labels"].tolist()],
        labels=labels, bootstrap=bootstrap, seed=seed,
    )  # fmt: skip


__all__ = ["evaluate", "predict", "train_variant"]
