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
The phases are a table (``PHASES``) that ``recipes/staged.py`` runs.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import datasets
from serhub.datasets_scripts.common import class_counts
from serhub.modeling.losses import build_classification_loss
from serhub.recipes.arguments import CONFIGS, DataArguments, RunArguments, start_run
from serhub.recipes.audio_llm_common import (
    SER_ONLY_OBJECTIVES,
    AudioLLMArguments,
    AudioLLMTrainer,
    CachedAudioLLMCollator,
    audio_token_check,
    evaluate_ser,
    evaluate_text_only,
    evaluate_wer,
)
from serhub.recipes.data import embedded_dataset_path, encode_labels, load_dataset_dict, resolve_labels
from serhub.recipes.logs import get_logger
from serhub.recipes.objectives import AudioLLMObjective, asr_weight_schedule
from serhub.recipes.reporting import finish_run, scalar_metrics, write_json
from serhub.recipes.run_folders import claim_output_dir, run_settings
from serhub.recipes.staged import (
    Stage,
    StagedRun,
    done_record,
    final_model,
    run_stages,
    stage_training_args,
)
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
    ctc_alignment_steps: int = field(
        default=0,
        metadata={
            "help": "phase 0: CTC steps aligning the connector's tokens to the LLM's own embeddings on the ASR "
            "corpus before phase 1 (recipes/ctc_alignment.py; no LLM layer runs); 0: none"
        },
    )
    ctc_learning_rate: float = field(default=3e-3, metadata={"help": "phase 0's learning rate"})
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


def connector_alone(model) -> None:
    """The LLM frozen: only the connector trains."""
    model.freeze_language_model()


def with_lora(model) -> None:
    """LoRA adapters on the LLM (added when the model has none yet) train with the connector."""
    if not model.config.has_lora:
        model.enable_lora()


# The EmoSLLM curriculum (paper sec. 3.4). Data "asr_*": the ASR corpus; "ser_*": the emotion corpus,
# whose transcripts give the joint answers. Each phase starts from the previous row's output.
PHASES = (
    Stage(
        "phase1",
        "the connector alone, on ASR (LLM frozen)",
        data="asr_train",
        eval_data="asr_eval",
        task="asr",
        trains=connector_alone,
        title="phase 1",
    ),
    Stage(
        "phase2",
        "the connector and LoRA, on ASR",
        data="asr_train",
        eval_data="asr_eval",
        task="asr",
        trains=with_lora,
        title="phase 2",
    ),
    Stage(
        "phase3",
        "emotion: SER-only prompts and/or joint '| ASR: ... | Emotion: ...' answers (the mix is logged)",
        data="ser_{train_split}",
        eval_data="ser_{eval_split}",
        task="asr+ser",
        trains=with_lora,
        title="phase 3",
    ),
)


def curriculum_stages(curriculum: CurriculumArguments) -> list[Stage]:
    """PHASES with their steps (--phase_max_steps; -1, --num_train_epochs, where it lists fewer)."""
    steps = curriculum.phase_max_steps
    return [
        dataclasses.replace(phase, max_steps=steps[i] if i < len(steps) else -1)
        for i, phase in enumerate(PHASES)
    ]


# ---------------------------------------------------------------------------------------- data
def load_data(data_args, curriculum, training_args):
    """The SER and ASR corpora, their label set and the splits the curriculum uses (16 kHz), named
    as their encoder caches are ("ser_<split>", "asr_train", "asr_eval")."""
    with training_args.main_process_first(desc="datasets"):
        ser = load_dataset_dict(data_args.dataset_name_or_path, data_args)
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
    splits = {
        **{f"ser_{k}": v for k, v in ser_splits.items()},
        **{f"asr_{k}": v for k, v in asr_splits.items()},
    }
    keep = {k: ("labels", "transcript") if k.startswith("ser_") else ("transcript",) for k in splits}
    return ser, asr, labels, splits, keep


# -------------------------------------------------------------------------------------- phases
def phase_evaluation(run: StagedRun, phase: Stage, processor):
    """What each evaluation of ``phase`` adds: held-out WER, the audio tokens' health, and (joint
    phases) macro-F1 / UA / WA in the label_logits (and transcript_conditioned) modes."""
    eval_split = run.dataset("ser_{eval_split}")
    batch_size = run.training_args.per_device_eval_batch_size

    def extra_eval(model):
        metrics = {
            "wer": evaluate_wer(model, processor, run.cached["asr_eval"], batch_size),
            **audio_token_check(model, processor, eval_split, run.labels),
        }
        if phase.joint:
            modes = ("label_logits", "transcript_conditioned")[
                : 2 if run.args.eval_transcript_conditioned else 1
            ]
            for mode, r in evaluate_ser(model, processor, eval_split, run.labels, modes).items():
                scores = {k: r[k] for k in ("macro_f1", "unweighted_accuracy", "accuracy")}
                metrics.update(scalar_metrics(scores, prefix=f"{mode}_"))
        return metrics

    return extra_eval


def phase_trainer(run: StagedRun, phases: list[Stage], index: int, model, processor) -> AudioLLMTrainer:
    phase, curriculum = phases[index], run.args
    train = run.dataset(phase.data)
    classification_loss = None
    if phase.joint:  # the label-restricted SER loss is weighted by the training split's class counts
        counts = class_counts(train, "labels", len(run.labels))
        classification_loss = build_classification_loss(run.model_args.loss_type, counts)
        logger.info(
            "%s batches: %.0f%% SER-only prompts (%s), %.0f%% joint answers; label loss %s, class counts %s",
            phase.label,
            100 * curriculum.ser_only_fraction,
            curriculum.ser_only_objective,
            100 * (1 - curriculum.ser_only_fraction),
            run.model_args.loss_type,
            dict(zip(run.labels, counts)),
        )
    objective = AudioLLMObjective(
        joint_label_weight=curriculum.joint_label_weight if phase.joint else 0.0,
        classification_loss=classification_loss,
    )
    schedules = [
        asr_weight_schedule(
            objective, curriculum.asr_weight_start, curriculum.asr_weight_end, curriculum.asr_weight_schedule
        )
    ]
    return AudioLLMTrainer(
        model=model,
        args=stage_training_args(run, phase),
        train_dataset=train,
        eval_dataset=run.dataset(phase.eval_data),
        data_collator=CachedAudioLLMCollator(
            processor,
            phase.task,
            run.labels,
            seed=run.training_args.seed + index + 1,  # + the phase's number
            ser_only_fraction=curriculum.ser_only_fraction if phase.joint else 0.0,
            ser_only_objective=curriculum.ser_only_objective,
            joint_label_targets=phase.joint and curriculum.joint_label_weight > 0,
            copy_fraction=0.0 if phase.joint else curriculum.ctc_copy_fraction,
        ),
        processing_class=processor,
        objective=objective,
        callbacks=schedules if phase.joint else None,
        extra_eval=phase_evaluation(run, phase, processor),
        lora_learning_rate=curriculum.lora_learning_rate,
    )


def wer_before_training(run: StagedRun, phase: Stage, model, processor, trainer, resumed) -> None:
    """Phase 1, not resumed: the untrained model's WER, what phases 1-2 are measured against; on disk
    at once, so an interrupted phase 1 keeps it. Every rank evaluates (ranks must reach training
    together)."""
    if phase.name != PHASES[0].name or resumed:
        return
    wer = evaluate_wer(model, processor, run.cached["asr_eval"], run.training_args.per_device_eval_batch_size)
    if trainer.is_world_process_zero():
        write_json(run.folder(phase) / "wer_before_training.json", {"wer": wer})
        logger.info("WER before training: %.3f", wer)


def curriculum_records(output_dir: str) -> tuple[dict, dict]:
    """From the phases' records: held-out WER before training and after each phase, and the audio
    tokens' statistics after each phase (each phase's last evaluation)."""
    wer_by_phase, tokens_by_phase = {}, {}
    if (before_file := Path(output_dir) / PHASES[0].name / "wer_before_training.json").is_file():
        wer_by_phase["before_training"] = json.loads(before_file.read_text())["wer"]
    for phase in PHASES:
        done_file = done_record(Path(output_dir) / phase.name)
        if done_file is None:
            continue
        evals = [h for h in json.loads(done_file.read_text())["log_history"] if "eval_wer" in h]
        if evals:
            wer_by_phase[f"after_{phase.name}"] = evals[-1]["eval_wer"]
            if "eval_token_diversity" in evals[-1]:
                tokens_by_phase[f"after_{phase.name}"] = {
                    k: evals[-1][f"eval_{k}"] for k in ("token_diversity", "token_norm_ratio")
                }
    return wer_by_phase, tokens_by_phase


# ---------------------------------------------------------------------------------- the end
def final_evaluation(run: StagedRun, model, processor) -> dict:
    """The final model's held-out WER and audio-token statistics (phase 3's end measured them on
    the same clips: not measured twice), test SER in both modes and from the transcript alone."""
    results = {}
    results["wer_by_phase"], results["audio_tokens_by_phase"] = curriculum_records(run.output_dir)
    results["wer_heldout_asr"] = results["wer_by_phase"].get("after_phase3")
    batch_size = run.training_args.per_device_eval_batch_size
    if results["wer_heldout_asr"] is None:
        results["wer_heldout_asr"] = evaluate_wer(model, processor, run.cached["asr_eval"], batch_size)
    results["audio_tokens"] = results["audio_tokens_by_phase"].get("after_phase3") or audio_token_check(
        model, processor, run.dataset("ser_{eval_split}"), run.labels
    )
    test = run.cached.get(f"ser_{run.data_args.test_split}") if run.data_args.test_split else None
    if test is not None:
        modes = ("label_logits", "transcript_conditioned")
        split = run.splits[f"ser_{run.data_args.test_split}"]
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


def finish(run: StagedRun, model, processor, results: dict, push_to_hub: bool) -> None:
    """Save the merged model, eval_results.json, the plots and the card; push if asked."""
    model_args, curriculum = run.model_args, run.args
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
    check_curriculum(model_args, curriculum)
    ser, asr, labels, splits, keep = load_data(data_args, curriculum, training_args)
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
    run = StagedRun("emosllm", model_args, data_args, curriculum, training_args, labels, splits, keep)

    phases = curriculum_stages(curriculum)
    model, processor = run_stages(
        run,
        phases,
        [number - 1 for number in curriculum.phases],
        trainer=phase_trainer,
        before_training=wer_before_training,
        **phase0(curriculum),
    )
    if 3 not in curriculum.phases or not training_args.should_save:
        return
    # the model phase 3 just trained, else (every phase was already done) its saved output
    model, processor = final_model(run, phases[-1], model, processor)
    finish(run, model, processor, final_evaluation(run, model, processor), push_to_hub)


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
    return {"build": aligned_build(curriculum.ctc_alignment_steps, data, curriculum.ctc_learning_rate)}


if __name__ == "__main__":
    from serhub.recipes.logs import run_main

    run_main(main, sys.argv[1:])
