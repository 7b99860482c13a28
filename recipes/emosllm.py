"""EmoSLLM (arXiv:2508.14130): frozen speech encoder -> query-pooling mapper -> LLM with LoRA, trained
with a 3-phase curriculum.

    accelerate launch recipes/emosllm.py                  # embedded default: Whisper tiny.en + SmolLM2-135M, CPU, ~13 min
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
from pathlib import Path

import datasets
from serhub.datasets_scripts.common import class_counts
from serhub.modeling.losses import build_classification_loss
from serhub.recipes.arguments import CONFIGS, DataArguments, RunArguments, start_run
from serhub.recipes.audio_llm_common import (
    AudioLLMArguments,
    AudioLLMTrainer,
    CachedAudioLLMCollator,
    audio_token_check,
    evaluate_ser,
    evaluate_text_only,
    evaluate_wer,
)
from serhub.recipes.data import embedded_dataset_path, encode_labels, load_dataset_dict, resolve_labels
from serhub.recipes.emosllm_arguments import (  # noqa: F401 (CTC_DATA: importable from here)
    CTC_DATA,
    CurriculumArguments,
    check_curriculum,
    check_label_tokens,
    phase0,
)
from serhub.recipes.emosllm_data import asr_training_clips
from serhub.recipes.emosllm_report import (  # noqa: F401 (connector_summary, paper_departures too)
    connector_summary,
    finish,
    paper_departures,
)
from serhub.recipes.logs import get_logger
from serhub.recipes.objectives import AudioLLMObjective, asr_weight_schedule
from serhub.recipes.reporting import scalar_metrics, write_json
from serhub.recipes.run_folders import claim_output_dir, run_settings
from serhub.recipes.speaker_prosody import check_speaker_data
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
        "train": asr_training_clips(asr, curriculum, audio, training_args),
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
        direct_label_weight=curriculum.direct_label_weight if phase.joint else 0.0,
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
            joint_label_targets=phase.joint
            and (curriculum.joint_label_weight > 0 or curriculum.direct_label_weight > 0),
            copy_fraction=0.0 if phase.joint else curriculum.ctc_copy_fraction,
        ),
        processing_class=processor,
        objective=objective,
        callbacks=schedules if phase.joint else None,
        extra_eval=phase_evaluation(run, phase, processor),
        lora_learning_rate=phase_lora_learning_rate(curriculum, phase),
        prosody_learning_rate=run.model_args.prosody_learning_rate
        if run.model_args.speaker_prosody
        else None,
    )


def phase_lora_learning_rate(curriculum: CurriculumArguments, phase: Stage) -> float | None:
    """The LoRA adapters' rate in ``phase``: phase 3's own where set (None: --learning_rate)."""
    if phase.joint and curriculum.phase3_lora_learning_rate is not None:
        return curriculum.phase3_lora_learning_rate
    return curriculum.lora_learning_rate


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
    check_label_tokens(model_args, curriculum, labels)
    if model_args.speaker_prosody:
        check_speaker_data("--speaker_prosody", data_args, ser[data_args.train_split].column_names)
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


if __name__ == "__main__":
    from serhub.recipes.logs import run_main

    run_main(main, sys.argv[1:])
