"""The descriptor system's own arguments (``recipes/descriptors.py``): its stages, the KL and ASR weight
schedules, the SER-only batches, the descriptor alignment (phase 0) and the pipeline's readout; the
card row and build hook of the alignment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from serhub.recipes.audio_llm_common import SER_ONLY_OBJECTIVES

KL_SCHEDULES = ("constant", "linear", "exponential", "cosine")


@dataclass
class DescriptorArguments:
    stages: list[int] = field(
        default_factory=lambda: [1, 2], metadata={"help": "the stages in order, e.g. 1 2 1 2 to alternate"}
    )
    stage_max_steps: list[int] = field(
        default_factory=lambda: [-1, -1],
        metadata={"help": "steps of each listed stage (-1: num_train_epochs)"},
    )
    kl_weight_start: float = 1.0
    kl_weight_end: float = 1e-4
    kl_weight_schedule: str = field(
        default="exponential", metadata={"help": "beta over training: " + " | ".join(KL_SCHEDULES)}
    )
    asr_weight_start: float = 1.0
    asr_weight_end: float = 0.1
    asr_weight_schedule: str = "linear"
    ser_only_fraction: float = field(
        default=0.5, metadata={"help": "stage 2: share of batches asking for the emotion alone"}
    )
    ser_only_objective: str = field(default="label_ce", metadata={"help": " | ".join(SER_ONLY_OBJECTIVES)})
    descriptors_column: str = "descriptors"
    descriptor_alignment_steps: int = field(
        default=0,
        metadata={
            "help": "a cheap phase 0 before the stages: the descriptor branch with linear heads for the emotion and "
            "each descriptor attribute over its pooled tokens, no LLM (recipes/descriptor_alignment.py); 0: none"
        },
    )
    descriptor_alignment_learning_rate: float = 1e-3
    descriptor_alignment_kl_weight: float = field(
        default=0.1, metadata={"help": "beta of the branch's KL term during the descriptor alignment"}
    )
    lora_learning_rate: float | None = field(
        default=None, metadata={"help": "LoRA's own learning rate (default: --learning_rate)"}
    )
    classification_mode: str = field(
        default="descriptor_conditioned",
        metadata={
            "help": "what the saved model's pipeline does: descriptor_conditioned | label_logits (faster)"
        },
    )
    max_ser_eval_samples: int | None = None
    max_generation_eval_samples: int | None = field(
        default=None,
        metadata={"help": "test clips whose answers are written (descriptor quality); all: None"},
    )

    NOT_SETTINGS: ClassVar[tuple[str, ...]] = ("stages", "stage_max_steps", "max_ser_eval_samples")

    def __post_init__(self):
        if set(self.stages) - {1, 2} or not self.stages:
            raise ValueError(f"--stages {self.stages}: the descriptor system has stages 1 and 2")
        if len(self.stage_max_steps) != len(self.stages) or any(
            s == 0 or s < -1 for s in self.stage_max_steps
        ):
            raise ValueError(
                f"--stage_max_steps {self.stage_max_steps}: give one step count (> 0, or -1 for "
                f"--num_train_epochs) for each of the {len(self.stages)} stages in --stages {self.stages}"
            )
        if self.kl_weight_schedule not in KL_SCHEDULES:
            raise ValueError(
                f"--kl_weight_schedule {self.kl_weight_schedule!r}: expected one of {KL_SCHEDULES}"
            )
        if self.kl_weight_start < 0 or self.kl_weight_end < 0:
            raise ValueError("--kl_weight_start and --kl_weight_end must be >= 0")
        if self.descriptor_alignment_kl_weight < 0:
            raise ValueError(
                f"--descriptor_alignment_kl_weight {self.descriptor_alignment_kl_weight}: expected >= 0"
            )
        if self.descriptor_alignment_steps < 0:
            raise ValueError(
                f"--descriptor_alignment_steps {self.descriptor_alignment_steps}: expected >= 0 (0: no alignment)"
            )
        for name in ("descriptor_alignment_learning_rate", "lora_learning_rate"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"--{name} {value}: expected a learning rate > 0")
        if self.classification_mode not in ("descriptor_conditioned", "label_logits"):
            raise ValueError(
                f"--classification_mode {self.classification_mode!r}: descriptor_conditioned or label_logits"
            )
        if self.ser_only_objective not in SER_ONLY_OBJECTIVES:
            raise ValueError(
                f"--ser_only_objective {self.ser_only_objective!r}: one of {SER_ONLY_OBJECTIVES}"
            )


def alignment_row(args: DescriptorArguments) -> dict:
    """The card's row for the descriptor alignment (phase 0), when the run had one."""
    if not args.descriptor_alignment_steps:
        return {}
    return {
        "descriptor alignment": f"{args.descriptor_alignment_steps} steps at {args.descriptor_alignment_learning_rate}, "
        f"beta {args.descriptor_alignment_kl_weight} (the descriptor branch with emotion and attribute heads, no LLM; heads dropped)"
    }


def alignment_build(run) -> dict:
    """``run_stages``' build hook: the descriptor alignment before the first stage, when asked for."""
    args = run.args
    if not args.descriptor_alignment_steps:
        return {}
    from serhub.recipes.descriptor_alignment import descriptor_aligned_build

    return {
        "build": descriptor_aligned_build(
            args.descriptor_alignment_steps,
            args.descriptor_alignment_learning_rate,
            args.descriptor_alignment_kl_weight,
        )
    }


__all__ = ["KL_SCHEDULES", "DescriptorArguments", "alignment_build", "alignment_row"]
