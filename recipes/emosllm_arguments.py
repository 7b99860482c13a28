"""EmoSLLM's curriculum settings (``recipes/emosllm.py``): the arguments beside the model's, data's and
Trainer's, and the checks and phase 0 they imply before any phase runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from serhub.recipes.audio_llm_common import SER_ONLY_OBJECTIVES, AudioLLMArguments


@dataclass
class CurriculumArguments:
    phases: list[int] = field(
        default_factory=lambda: [1, 2, 3], metadata={"help": "which phases to run, in order"}
    )
    phase_max_steps: list[int] = field(
        default_factory=lambda: [-1, -1, -1],
        metadata={"help": "steps of phases 1, 2, 3 (-1: num_train_epochs)"},
    )
    asr_weight_start: float = 1.0
    asr_weight_end: float = 0.1
    asr_weight_schedule: str = field(default="linear", metadata={"help": "constant | linear | cosine"})
    ser_only_fraction: float = field(
        default=0.0,
        metadata={
            "help": "phase 3: share of batches with the SER-only prompt (trains the label_logits readout); "
            "the rest are joint '| ASR: ... | Emotion: ...' answers"
        },
    )
    ser_only_objective: str = field(
        default="lm",
        metadata={
            "help": "phase 3's SER-only batches: 'lm' (LM loss on the label word, EmoSLLM) or 'label_ce' "
            "(class-weighted cross-entropy over the labels' scores alone, the label_logits readout)"
        },
    )
    joint_label_weight: float = field(
        default=0.0,
        metadata={
            "help": "phase 3's joint answers: weight of a class-weighted cross-entropy over the labels' scores "
            "at the answer's label, added to the LM loss (the transcript_conditioned readout); 0: LM loss alone"
        },
    )
    direct_label_weight: float = field(
        default=0.0,
        metadata={
            "help": "phase 3's joint answers: weight of a class-weighted cross-entropy over the labels' scores "
            "at the answer's first token (the label_logits readout, trained in the joint answer's own forward "
            "beside the SER-only batches); 0: none"
        },
    )
    lora_learning_rate: float | None = field(
        default=None,
        metadata={"help": "the LoRA adapters' learning rate (phases 2-3); default: --learning_rate"},
    )
    phase3_lora_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "the LoRA adapters' learning rate in phase 3 (a rate that teaches phase 2 to transcribe can "
            "make phase 3's emotion batches overwrite the transcription); default: --lora_learning_rate"
        },
    )
    ctc_alignment_steps: int = field(
        default=0,
        metadata={
            "help": "phase 0: CTC steps aligning the connector's tokens to the LLM's own embeddings on the ASR "
            "corpus before phase 1 (recipes/ctc_alignment.py; no LLM layer runs); 0: none"
        },
    )
    ctc_learning_rate: float = field(default=3e-3, metadata={"help": "phase 0's learning rate"})
    ctc_sampled_tokens: int | None = field(
        default=4096,
        metadata={
            "help": "phase 0: each step's softmax covers the alignment corpus's own tokens plus this many "
            "others drawn at random (a sampled softmax; decoding still scores every token; the "
            "README compares its speed and WER with the whole vocabulary's); None: the whole vocabulary"
        },
    )
    ctc_copy_fraction: float = field(
        default=0.0,
        metadata={
            "help": "--connector ctc_path, phases 1-2: share of ASR rows whose words slots hold the reference "
            "transcript's tokens instead of the CTC head's (LoRA learns to copy what it reads there)"
        },
    )
    ctc_alignment_data: list[str] = field(
        default_factory=lambda: ["asr_train"],
        metadata={
            "help": "phase 0's data, pooled: asr_train (the ASR corpus) and/or ser_train (the emotion "
            "corpus's transcribed training clips)"
        },
    )
    asr_dataset_name_or_path: str | None = field(
        default=None, metadata={"help": "ASR data; default: the embedded Asterisk prompts"}
    )
    asr_extra_datasets: list[str] = field(
        default_factory=list,
        metadata={
            "help": "more paired speech for phases 0-2: each dataset's --asr_train_split (a folder or an "
            "embedded corpus's name, e.g. synthetic_emotions_v2: 74 voices) joins the ASR training clips; a "
            "clip that says one of the held-out ASR prompts is refused"
        },
    )
    asr_train_split: str = "train"
    asr_eval_split: str = "test"
    max_asr_eval_samples: int = 48
    max_asr_transcript_words: int | None = field(
        default=None,
        metadata={"help": "drop ASR clips with longer transcripts (long prompts cost time and memory)"},
    )
    max_ser_eval_samples: int | None = None
    eval_transcript_conditioned: bool = True

    # what a run may change and still continue the same run: which phases run now, how long they
    # train (more steps continue a run) and how much is evaluated
    NOT_SETTINGS: ClassVar[tuple[str, ...]] = (
        "phases",
        "phase_max_steps",
        "max_asr_eval_samples",
        "max_ser_eval_samples",
        "eval_transcript_conditioned",
        "bootstrap",
    )

    def __post_init__(self):
        bad = [s for s in self.phase_max_steps if s == 0 or s < -1]
        if bad:
            raise ValueError(
                f"--phase_max_steps {self.phase_max_steps}: each phase needs > 0 steps, or -1 for "
                "--num_train_epochs; a phase of zero steps would report an untrained model."
            )
        if (
            self.joint_label_weight < 0
            or self.direct_label_weight < 0
            or (self.lora_learning_rate is not None and self.lora_learning_rate <= 0)
        ):
            raise ValueError(
                f"--joint_label_weight {self.joint_label_weight} and --direct_label_weight "
                f"{self.direct_label_weight} must be >= 0, --lora_learning_rate {self.lora_learning_rate} > 0 "
                "(or unset)"
            )
        if self.ser_only_objective not in SER_ONLY_OBJECTIVES:
            raise ValueError(
                f"--ser_only_objective {self.ser_only_objective!r}: expected one of {SER_ONLY_OBJECTIVES}"
            )
        unknown = sorted(set(self.phases) - {1, 2, 3})
        if unknown:
            raise ValueError(f"--phases {self.phases}: EmoSLLM has phases 1, 2 and 3, not {unknown}")


def check_curriculum(model_args: AudioLLMArguments, curriculum: CurriculumArguments) -> None:
    """A connector that reads the words through its CTC head needs phase 0 to train that head."""
    from serhub.modeling.connectors import connector_class

    reads_words = connector_class(model_args.connector).reads_embeddings
    if reads_words and curriculum.ctc_alignment_steps <= 0:
        raise ValueError(
            f"--connector {model_args.connector} gives the LLM the words its CTC head hears, and that head "
            "trains in phase 0: add --ctc_alignment_steps N (e.g. 200)"
        )
    if not 0.0 <= curriculum.ctc_copy_fraction <= 1.0:
        raise ValueError(
            f"--ctc_copy_fraction is a share of rows in [0, 1], got {curriculum.ctc_copy_fraction}"
        )
    if curriculum.ctc_copy_fraction > 0 and not reads_words:
        raise ValueError(
            f"--ctc_copy_fraction fills the words slots of the ctc_path connector; --connector "
            f"{model_args.connector} has none"
        )


CTC_DATA = {"asr_train": "asr_train", "ser_train": "ser_{train_split}"}  # --ctc_alignment_data -> cached data


def phase0(curriculum: CurriculumArguments) -> dict:
    """With --ctc_alignment_steps: phase 1 starts from a connector CTC-aligned on the ASR corpus."""
    if curriculum.ctc_alignment_steps <= 0:
        return {}
    from serhub.recipes.ctc_alignment import aligned_build

    for name in curriculum.ctc_alignment_data:
        if name not in CTC_DATA:
            raise ValueError(f"--ctc_alignment_data {name}: expected some of {', '.join(CTC_DATA)}")
    data = [CTC_DATA[name] for name in curriculum.ctc_alignment_data]
    return {
        "build": aligned_build(
            curriculum.ctc_alignment_steps,
            data,
            curriculum.ctc_learning_rate,
            sampled_tokens=curriculum.ctc_sampled_tokens,
        )  # fmt: skip
    }


def check_label_tokens(model_args, curriculum: CurriculumArguments, labels: list[str]) -> None:
    """Phase 3's label losses on joint answers score each label by its first token (as written after
    "| Emotion:", and as the SER-only answer): labels that share one are refused before anything runs."""
    weights = {
        "--joint_label_weight": (curriculum.joint_label_weight, True),
        "--direct_label_weight": (curriculum.direct_label_weight, False),
    }
    if 3 not in curriculum.phases or not any(weight for weight, _ in weights.values()):
        return
    from serhub.modeling.offline_assets import resolve_pretrained
    from serhub.modeling.prompting_audio_llm import label_text
    from serhub.recipes.objectives import labels_sharing_first_token
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_pretrained(model_args.text_model_name_or_path))
    for flag, (weight, after_prefix) in weights.items():
        if not weight:
            continue
        ids = [
            tokenizer(label_text(label, after_prefix), add_special_tokens=False)["input_ids"]
            for label in labels
        ]
        shared = labels_sharing_first_token(labels, ids)
        if shared:
            raise ValueError(
                f"{flag} {weight} scores each label by its first token, but {shared} share one in this "
                f"LLM's tokenizer; rename those labels or set {flag} 0"
            )


__all__ = ["CTC_DATA", "CurriculumArguments", "check_curriculum", "check_label_tokens", "phase0"]
