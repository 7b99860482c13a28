"""What the recipes' trainers share about optimisation: the LoRA adapters' own learning rate."""

from __future__ import annotations


class LoraLearningRateMixin:
    """A ``Trainer`` mixin: with ``lora_learning_rate`` set, the stock optimizer's LoRA adapters move
    to parameter groups of their own at that rate (the rest, e.g. a connector or a classification
    head, keep ``--learning_rate``; the scheduler scales every group alike). A new module trained
    from scratch next to a pretrained LLM wants a higher rate than the LLM's adapters: at one rate
    for both, 1e-3 wrecked SmolLM2's transcripts and 1e-4 barely moves a new head in 90 steps."""

    lora_learning_rate: float | None = None

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if self.lora_learning_rate is None:
            return optimizer
        model = self.model if model is None else model
        lora = {id(p) for n, p in model.named_parameters() if "lora_" in n and p.requires_grad}
        extra = []
        for group in optimizer.param_groups:
            mine = [p for p in group["params"] if id(p) in lora]
            if mine:
                group["params"] = [p for p in group["params"] if id(p) not in lora]
                extra.append({**group, "params": mine, "lr": self.lora_learning_rate})
        optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["params"]]
        for group in extra:
            optimizer.add_param_group(group)
        return optimizer


__all__ = ["LoraLearningRateMixin"]
