"""EmoSLLM (arXiv:2508.14130): frozen speech encoder -> query-pooling mapper -> LLM with LoRA, trained
with a 3-phase curriculum.

    accelerate launch recipes/emosllm.py                  # embedded default: Whisper tiny.en + SmolLM2-135M, CPU, ~12 min
    accelerate launch recipes/emosllm.py --phases 3       # one phase alone (starts from phase 2's output)
    accelerate launch --config_file recipes/accelerate_configs/cpu_ddp.yaml recipes/emosllm.py --use_cpu true
    accelerate launch --config_file recipes/accelerate_configs/ddp.yaml recipes/emosllm.py \\
        --config recipes/configs/emosllm/paper_wavlm_llama3b_msp.yaml --dataset_name_or_path data/msp_podcast

Phase 1: only the mapper trains, on ASR. Phase 2: + LoRA on the LLM, still ASR. Phase 3: joint ASR +
SER answers "| ASR: <transcript> | Emotion: <label>", the transcript tokens weighted by an ASR weight
that decreases over the phase. Each phase starts from the previous phase's output
(``<output_dir>/phase<k>``, a trainable-only checkpoint); a finished phase is skipped on re-run and an
interrupted one resumes from its last checkpoint. The frozen encoder runs once per dataset (cache).

Every evaluation reports WER on held-out ASR speech, and in phase 3 macro-F1 / UA / WA in the
label_logits and transcript_conditioned modes. The final model (LoRA merged) is in <output_dir>,
loadable with AutoModelForAudioClassification / pipeline("audio-classification")
(trust_remote_code=True), with eval_results.json, confusion_matrix.png, training_curves.png and a
model card.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import ClassVar

import datasets
from serhub.datasets_scripts.common import class_counts
from serhub.modeling import AudioLLMForConditionalGeneration, AudioLLMProcessor
from serhub.recipes.arguments import CONFIGS, DataArguments, RunArguments, start_run
from serhub.recipes.audio_llm_common import (
    SER_ONLY_OBJECTIVES,
    AudioLLMArguments,
    AudioLLMTrainer,
    CachedAudioLLMCollator,
    asr_weight,
    audio_token_check,
    build_model,
    cache_split,
    evaluate_ser,
    evaluate_text_only,
    evaluate_wer,
)
from serhub.recipes.data import embedded_dataset_path, encode_labels, load_dataset_dict, resolve_labels
from serhub.recipes.logs import get_logger
from serhub.recipes.reporting import finish_run, scalar_metrics, write_json
from serhub.recipes.run_folders import claim_output_dir, last_complete_checkpoint, run_settings
from transformers import TrainingArguments

DEFAULT_CONFIG = CONFIGS / "emosllm" / "default.yaml"
logger = get_logger("emosllm")


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
    lora_learning_rate: float | None = field(
        default=None,
        metadata={"help": "the LoRA adapters' learning rate (phases 2-3); default: --learning_rate"},
    )
    asr_dataset_name_or_path: str | None = field(
        default=None, metadata={"help": "ASR data; default: the embedded Asterisk prompts"}
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
        if self.joint_label_weight < 0 or (
            self.lora_learning_rate is not None and self.lora_learning_rate <= 0
        ):
            raise ValueError(
                f"--joint_label_weight {self.joint_label_weight} must be >= 0 and --lora_learning_rate "
                f"{self.lora_learning_rate} > 0 (or unset)"
            )
        if self.ser_only_objective not in SER_ONLY_OBJECTIVES:
            raise ValueError(
                f"--ser_only_objective {self.ser_only_objective!r}: expected one of {SER_ONLY_OBJECTIVES}"
            )
        unknown = sorted(set(self.phases) - {1, 2, 3})
        if unknown:
            raise ValueError(f"--phases {self.phases}: EmoSLLM has phases 1, 2 and 3, not {unknown}")


@dataclass(frozen=True)
class Phase:
    """One stage of the EmoSLLM curriculum (paper sec. 3.4)."""

    number: int
    description: str
    data: str  # "asr": the ASR corpus; "ser": the emotion corpus (its transcripts give the joint answers)
    task: str  # what the collator asks for: "asr" or "asr+ser"
    lora: bool  # LoRA adapters on the LLM; without them the LLM is frozen

    @property
    def joint(self) -> bool:
        """Emotion answers: a scheduled ASR weight, a SER-only share of batches, SER metrics."""
        return self.task == "asr+ser"


PHASES = {
    1: Phase(1, "the connector alone, on ASR (LLM frozen)", data="asr", task="asr", lora=False),
    2: Phase(2, "the connector and LoRA, on ASR", data="asr", task="asr", lora=True),
    3: Phase(3, "joint '| ASR: ... | Emotion: ...' answers, decreasing ASR weight", "ser", "asr+ser", True),
}


def phase_dir(output_dir: str, phase: int) -> Path:
    return Path(output_dir) / f"phase{phase}"


@dataclass
class Run:
    """What the stages of one run share: its arguments, data, encoder cache and records."""

    model_args: AudioLLMArguments
    data_args: DataArguments
    curriculum: CurriculumArguments
    training_args: TrainingArguments
    labels: list[str]
    ser_splits: dict
    asr_splits: dict
    cached: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    history: list = field(default_factory=list)

    @property
    def output_dir(self) -> str:
        return self.training_args.output_dir


# ---------------------------------------------------------------------------------------- data
def load_data(data_args, curriculum, training_args):
    """The SER and ASR corpora, their label set and the splits the curriculum uses (16 kHz)."""
    with training_args.main_process_first(desc="datasets"):
        ser = load_dataset_dict(data_args.dataset_name_or_path)
        asr = load_dataset_dict(
            curriculum.asr_dataset_name_or_path or str(embedded_dataset_path("asterisk_prompts"))
        )
    labels = resolve_labels(ser, data_args)
    audio = datasets.Audio(sampling_rate=16000)
    names = [s for s in (data_args.train_split, data_args.eval_split, data_args.test_split) if s]
    ser_splits = {
        s: encode_labels(ser[s].cast_column("audio", audio), data_args.label_column, labels) for s in names
    }
    if curriculum.max_ser_eval_samples:
        evaluation = ser_splits[data_args.eval_split]
        ser_splits[data_args.eval_split] = evaluation.select(
            range(min(curriculum.max_ser_eval_samples, len(evaluation)))
        )
    asr_splits = {
        "train": asr[curriculum.asr_train_split].cast_column("audio", audio),
        "eval": asr[curriculum.asr_eval_split].cast_column("audio", audio),
    }
    if curriculum.max_asr_transcript_words:
        limit = curriculum.max_asr_transcript_words
        asr_splits = {
            k: v.filter(lambda t: len(t.split()) <= limit, input_columns="transcript")
            for k, v in asr_splits.items()
        }
    asr_splits["eval"] = asr_splits["eval"].select(
        range(min(curriculum.max_asr_eval_samples, len(asr_splits["eval"])))
    )
    return ser, asr, labels, ser_splits, asr_splits


def ensure_cached(run: Run, model, processor) -> None:
    """Encode every dataset once with the frozen encoder (the same in every phase)."""
    if run.cached:
        return
    start = time.time()
    with run.training_args.main_process_first(desc="encoder cache"):
        cache, bs = f"{run.output_dir}/encoder_cache", run.training_args.per_device_eval_batch_size
        for name, ds in run.ser_splits.items():
            run.cached[f"ser_{name}"] = cache_split(
                model, processor, ds, cache, f"ser_{name}", bs, ("labels", "transcript")
            )
        for name, ds in run.asr_splits.items():
            run.cached[f"asr_{name}"] = cache_split(
                model, processor, ds, cache, f"asr_{name}", bs, ("transcript",)
            )
    run.timings["encoder_cache_s"] = round(time.time() - start, 1)


# -------------------------------------------------------------------------------------- phases
def load_phase_model(run: Run, phase: Phase):
    """Phase 1 starts from the pretrained parts; phase k from phase k-1's output (+ LoRA when the
    phase trains it)."""
    previous = phase_dir(run.output_dir, phase.number - 1)
    if phase.number == 1 or not (previous / "phase_done.json").is_file():
        if phase.number > 1:
            logger.info(
                "phase %d output not found: phase %d starts from the pretrained parts",
                phase.number - 1,
                phase.number,
            )
        model, processor = build_model(run.model_args, run.labels)
    else:
        model = AudioLLMForConditionalGeneration.from_pretrained(previous)
        processor = AudioLLMProcessor.from_pretrained(previous)
    model.config.backbone_weights = "referenced"  # phase outputs and checkpoints: what trains only
    model.train()
    if not phase.lora:
        model.freeze_language_model()
    elif not model.config.has_lora:
        model.enable_lora()
    logger.info("phase %d: %s (%s)", phase.number, model.trainable_parameters(), phase.description)
    return model, processor


def phase_evaluation(run: Run, phase: Phase, processor):
    """What each evaluation of ``phase`` adds: held-out WER, the audio tokens' health, and (joint
    phases) macro-F1 / UA / WA in the label_logits (and transcript_conditioned) modes."""
    eval_split = run.cached[f"ser_{run.data_args.eval_split}"]
    batch_size = run.training_args.per_device_eval_batch_size

    def extra_eval(model):
        metrics = {
            "wer": evaluate_wer(model, processor, run.cached["asr_eval"], batch_size),
            **audio_token_check(model, processor, eval_split, run.labels),
        }
        if phase.joint:
            modes = ("label_logits", "transcript_conditioned")[
                : 2 if run.curriculum.eval_transcript_conditioned else 1
            ]
            for mode, r in evaluate_ser(model, processor, eval_split, run.labels, modes).items():
                scores = {k: r[k] for k in ("macro_f1", "unweighted_accuracy", "accuracy")}
                metrics.update(scalar_metrics(scores, prefix=f"{mode}_"))
        return metrics

    return extra_eval


def phase_trainer(run: Run, phase: Phase, model, processor) -> AudioLLMTrainer:
    curriculum, out = run.curriculum, phase_dir(run.output_dir, phase.number)
    train = run.cached[f"ser_{run.data_args.train_split}"] if phase.data == "ser" else run.cached["asr_train"]
    if phase.joint:  # the label-restricted SER loss is weighted by the training split's class counts
        model.config.class_counts = class_counts(train, "labels", len(run.labels))
        logger.info(
            "phase %d batches: %.0f%% SER-only prompts (%s), %.0f%% joint answers",
            phase.number,
            100 * curriculum.ser_only_fraction,
            curriculum.ser_only_objective,
            100 * (1 - curriculum.ser_only_fraction),
        )
    steps = (
        curriculum.phase_max_steps[phase.number - 1]
        if len(curriculum.phase_max_steps) >= phase.number
        else -1
    )
    args = dataclasses.replace(
        run.training_args,
        output_dir=str(out),
        max_steps=steps,
        load_best_model_at_end=False,
        label_names=["labels"],
    )
    schedule = partial(
        asr_weight,
        start=curriculum.asr_weight_start,
        end=curriculum.asr_weight_end,
        schedule=curriculum.asr_weight_schedule,
    )
    return AudioLLMTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=run.cached[f"ser_{run.data_args.eval_split}"] if phase.joint else run.cached["asr_eval"],
        data_collator=CachedAudioLLMCollator(
            processor,
            phase.task,
            run.labels,
            seed=run.training_args.seed + phase.number,
            ser_only_fraction=curriculum.ser_only_fraction if phase.joint else 0.0,
            ser_only_objective=curriculum.ser_only_objective,
            joint_label_targets=phase.joint and curriculum.joint_label_weight > 0,
        ),
        processing_class=processor,
        asr_weight_schedule=schedule if phase.joint else None,
        extra_eval=phase_evaluation(run, phase, processor),
        joint_label_weight=curriculum.joint_label_weight if phase.joint else 0.0,
        lora_learning_rate=curriculum.lora_learning_rate,
    )


def run_phase(run: Run, phase: Phase):
    """Train one phase (resuming its last checkpoint), evaluate it and save its output."""
    out = phase_dir(run.output_dir, phase.number)
    model, processor = load_phase_model(run, phase)
    ensure_cached(run, model, processor)
    trainer = phase_trainer(run, phase, model, processor)
    last = last_complete_checkpoint(str(out)) if out.is_dir() else None
    if last:
        logger.info("resuming phase %d from %s", phase.number, last)
    if phase.number == 1 and not last:
        # the untrained model's WER, what phases 1-2 are measured against; on disk at once, so an
        # interrupted phase 1 keeps it. Every rank evaluates (ranks must reach training together).
        wer = evaluate_wer(
            model, processor, run.cached["asr_eval"], run.training_args.per_device_eval_batch_size
        )
        if trainer.is_world_process_zero():
            write_json(out / "wer_before_training.json", {"wer": wer})
            logger.info("WER before training: %.3f", wer)
    start = time.time()
    trainer.train(resume_from_checkpoint=last)
    seconds = run.timings[f"phase{phase.number}_s"] = round(time.time() - start, 1)
    trainer.evaluate()  # the phase's end: WER (and SER in phase 3) into the log history
    checksums = rank_checksums(model, run.training_args.world_size)
    logger.info("phase %d weights checksum per rank (of %d): %s", phase.number, len(checksums), checksums)
    if len(set(checksums)) > 1:  # DDP ranks must end a phase with identical weights
        logger.warning("phase %d: the ranks' weights differ (%s)", phase.number, checksums)
    if trainer.is_world_process_zero():
        model.save_pretrained(out)
        processor.save_pretrained(out)
        for h in trainer.state.log_history:
            h["phase"] = phase.number
        run.history += trainer.state.log_history
        record = {
            "log_history": trainer.state.log_history,
            "seconds": seconds,
            "world_size": run.training_args.world_size,
        }
        write_json(out / "phase_done.json", record)
    logger.info("phase %d done in %s s", phase.number, seconds)
    return model, processor


def rank_checksums(model, world_size: int) -> list[float]:
    """Every rank's sum of its trainable weights (one process: its own), to check that DDP ranks
    end a phase with identical weights."""
    import torch

    value = round(float(sum(p.detach().double().sum() for p in model.parameters() if p.requires_grad)), 6)
    if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        values = [None] * world_size
        torch.distributed.all_gather_object(values, value)
        return values
    return [value]


def curriculum_records(output_dir: str) -> tuple[dict, dict]:
    """From the phases' records: held-out WER before training and after each phase, and the audio
    tokens' statistics after each phase (each phase's last evaluation)."""
    wer_by_phase, tokens_by_phase = {}, {}
    if (before_file := phase_dir(output_dir, 1) / "wer_before_training.json").is_file():
        wer_by_phase["before_training"] = json.loads(before_file.read_text())["wer"]
    for phase in PHASES:
        done_file = phase_dir(output_dir, phase) / "phase_done.json"
        if not done_file.is_file():
            continue
        evals = [h for h in json.loads(done_file.read_text())["log_history"] if "eval_wer" in h]
        if evals:
            wer_by_phase[f"after_phase{phase}"] = evals[-1]["eval_wer"]
            if "eval_token_diversity" in evals[-1]:
                tokens_by_phase[f"after_phase{phase}"] = {
                    k: evals[-1][f"eval_{k}"] for k in ("token_diversity", "token_norm_ratio")
                }
    return wer_by_phase, tokens_by_phase


# ---------------------------------------------------------------------------------- the end
def final_evaluation(run: Run, model, processor) -> dict:
    """The final model's held-out WER and audio-token statistics (phase 3's end measured them on
    the same clips: not measured twice), test SER in both modes and from the transcript alone."""
    results = {}
    results["wer_by_phase"], results["audio_tokens_by_phase"] = curriculum_records(run.output_dir)
    results["wer_heldout_asr"] = results["wer_by_phase"].get("after_phase3")
    batch_size = run.training_args.per_device_eval_batch_size
    if results["wer_heldout_asr"] is None:
        results["wer_heldout_asr"] = evaluate_wer(model, processor, run.cached["asr_eval"], batch_size)
    results["audio_tokens"] = results["audio_tokens_by_phase"].get("after_phase3") or audio_token_check(
        model, processor, run.cached[f"ser_{run.data_args.eval_split}"], run.labels
    )
    test = run.cached.get(f"ser_{run.data_args.test_split}") if run.data_args.test_split else None
    if test is not None:
        modes = ("label_logits", "transcript_conditioned")
        split = run.ser_splits[run.data_args.test_split]
        speakers = list(split["speaker_id"]) if "speaker_id" in split.column_names else None
        results.update(
            evaluate_ser(
                model,
                processor,
                test,
                run.labels,
                modes,
                bootstrap=run.data_args.bootstrap,
                speakers=speakers,
            )
        )
        # the modality comparison the synthetic corpus is built for: the same model from the words alone
        results["text_only"] = evaluate_text_only(model, processor, test, run.labels)
    return results


def finish(run: Run, model, processor, results: dict, push_to_hub: bool) -> None:
    """Save the merged model, eval_results.json, the plots and the card; push if asked."""
    model_args, curriculum = run.model_args, run.curriculum
    modes = [m for m in ("label_logits", "transcript_conditioned") if m in results]
    best = max(modes, key=lambda m: results[m]["macro_f1"]) if modes else None
    finish_run(
        run.output_dir,
        save=(model.merge_and_unload_lora(), processor),
        results=results,
        summary={**run.timings, "labels": run.labels, "world_size": run.training_args.world_size},
        labels=run.labels,
        confusion=(results[best], f"test ({best})") if best else None,
        history=run.history,
        curves_title="EmoSLLM curriculum",
        card={
            "template": "audio_llm.md",
            "model_name": "serhub-emosllm",
            "dataset_name": run.data_args.dataset_name_or_path or "synthetic_emotions",
            "results": {f"test ({m})": results[m] for m in modes},
            "base_model": model_args.text_model_name_or_path,
            "tags": ["emosllm", "audio-llm"],
            "wer": results["wer_heldout_asr"],
            "training_config": {
                "audio model": model_args.audio_model_name_or_path,
                "LLM": model_args.text_model_name_or_path,
                "connector": connector_summary(model_args),
                "LoRA": f"r={model_args.lora_r}, alpha={model_args.lora_alpha}",
                "phases": curriculum.phases,
                "steps per phase": curriculum.phase_max_steps,
                "phase 3 batches": f"{curriculum.ser_only_fraction:.0%} SER-only prompts "
                f"({curriculum.ser_only_objective}), the rest joint '| ASR: ... | Emotion: ...' answers",
                "ASR weight": f"{curriculum.asr_weight_start} -> {curriculum.asr_weight_end} ({curriculum.asr_weight_schedule})",
                "learning rate": run.training_args.learning_rate,
                "LoRA learning rate": curriculum.lora_learning_rate or run.training_args.learning_rate,
                **paper_departures(model_args, curriculum),
            },
        },
        training_args=run.training_args,
        push_to_hub=push_to_hub,
    )
    short = {
        k: {m: v[m] for m in ("macro_f1", "unweighted_accuracy", "accuracy")}
        if isinstance(v, dict) and "macro_f1" in v
        else v
        for k, v in results.items()
    }
    logger.info("%s", json.dumps(short, indent=2))


def connector_summary(model_args: AudioLLMArguments) -> str:
    from serhub.modeling.connectors import connector_class

    return connector_class(model_args.connector).describe(model_args)


def paper_departures(model_args: AudioLLMArguments, curriculum: CurriculumArguments) -> dict:
    """The card's rows for what this run does differently from EmoSLLM's own recipe."""
    rows = []
    from serhub.modeling.connectors import QueryPoolingMapper, connector_class

    if connector_class(model_args.connector) is not QueryPoolingMapper:  # the paper's connector
        rows.append(f"connector {model_args.connector} in place of EmoSLLM's QPMapper")
    if curriculum.ser_only_fraction >= 1.0:
        rows.append("phase 3 trains the SER-only prompt alone (EmoSLLM's SER-only variant), no joint answers")
    if curriculum.ser_only_fraction > 0 and curriculum.ser_only_objective == "label_ce":
        rows.append("SER-only batches use a class-weighted CE over the labels' scores, not the LM loss")
    if not rows:
        return {}
    return {
        "departures from the paper": "; ".join(rows)
        + " (measured reasons: recipes/configs/emosllm/default.yaml)"
    }


# what main() parses (and every config in recipes/configs/emosllm/ must parse with)
ARGUMENTS = (AudioLLMArguments, DataArguments, CurriculumArguments, RunArguments, TrainingArguments)


def main(argv=None):
    model_args, data_args, curriculum, run_args, training_args, push_to_hub = start_run(
        ARGUMENTS,
        DEFAULT_CONFIG,
        argv,
    )
    ser, asr, labels, ser_splits, asr_splits = load_data(data_args, curriculum, training_args)
    # the folder is this run's: a finished or partial run with other data/labels/settings is refused
    settings = run_settings(
        training_args,
        labels,
        {**{f"ser_{k}": v for k, v in ser.items()}, **{f"asr_{k}": v for k, v in asr.items()}},
        model_args,
        data_args,
        curriculum,
        # which phases run now, how long they train (more steps continue a run) and evaluation sizes
        exclude=CurriculumArguments.NOT_SETTINGS,
    )
    run_lock = claim_output_dir(  # noqa: F841 (held until the process exits)
        training_args.output_dir,
        "emosllm",
        settings,
        run_args.overwrite_output_dir,
        training_args.process_index == 0,
    )
    run = Run(model_args, data_args, curriculum, training_args, labels, ser_splits, asr_splits)

    model = processor = None
    for number in curriculum.phases:
        done = phase_dir(run.output_dir, number) / "phase_done.json"
        if done.is_file():
            logger.info("phase %d already done (%s); skipping", number, done.parent)
            run.history += json.loads(done.read_text())["log_history"]
            continue
        model, processor = run_phase(run, PHASES[number])

    if 3 not in curriculum.phases or not training_args.should_save:
        return
    if model is None:  # every phase was already done: evaluate the saved phase-3 model
        final = phase_dir(run.output_dir, 3)
        model, processor = (
            AudioLLMForConditionalGeneration.from_pretrained(final),
            AudioLLMProcessor.from_pretrained(final),
        )
    ensure_cached(run, model, processor)
    model.eval()
    finish(run, model, processor, final_evaluation(run, model, processor), push_to_hub)


if __name__ == "__main__":
    sys.exit(main())
