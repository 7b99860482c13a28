"""THAU-UPM's Whisper-LLM (IberLEF 2024 EmoSPeech): frozen Whisper encoder -> trained linear projector
-> frozen LLM; class probabilities from the LLM's next-token log-likelihood of each label, trained
with weighted cross-entropy.

    accelerate launch recipes/whisper_llm.py                 # embedded default: Whisper tiny.en + SmolLM2-135M on synthetic_emotions_v2, CPU
    accelerate launch recipes/whisper_llm.py --num_folds 5   # stratified 5-fold cross-validation (mean and spread of macro-F1)
    accelerate launch recipes/whisper_llm.py --config recipes/configs/whisper_llm/paper_whisper_large_gemma2b_emospeech.yaml \\
        --dataset_name_or_path data/emospeech

Only the projector trains (checkpoints hold just its weights); the encoder runs once per clip
(cache). After training a temperature is fitted on validation (``serhub/calibration.py``) and stored
as ``calibration_temperature`` in the config. Outputs in --output_dir: the model
(AutoModelForAudioClassification / pipeline("audio-classification") with trust_remote_code=True),
eval_results.json (with ECE / NLL before and after calibration), confusion_matrix.png,
training_curves.png, README.md; with --num_folds, cross_validation.json.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from serhub.datasets_scripts.common import class_counts
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics, speaker_scores
from serhub.modeling.connectors import connector_class
from serhub.modeling.losses import build_classification_loss
from serhub.recipes.arguments import CONFIGS, DataArguments, RunArguments, start_run
from serhub.recipes.audio_llm_common import (
    AudioLLMArguments,
    AudioLLMTrainer,
    CachedAudioLLMCollator,
    build_model,
    cache_split,
    cache_training_split,
)
from serhub.recipes.connector_init import card_row as connector_start
from serhub.recipes.data import (
    encode_labels,
    encoder_cache_dir,
    load_dataset_dict,
    require_splits,
    resolve_labels,
)
from serhub.recipes.logs import get_logger
from serhub.recipes.objectives import AudioLLMObjective
from serhub.recipes.reporting import EpochTimer, calibration_line, finish_run, scalar_metrics, write_json
from serhub.recipes.run_folders import claim_output_dir, last_complete_checkpoint, run_settings
from serhub.recipes.speaker_prosody import (
    SPEAKER_PROSODY_NOTE,
    check_speaker_data,
    measuring_feature_extractor,
    speaker_prosody_columns,
    speaker_prosody_row,
)
from transformers import TrainingArguments

from serhub.calibration import calibrate, trainer_logits

DEFAULT_CONFIG = CONFIGS / "whisper_llm" / "default.yaml"
logger = get_logger("whisper_llm")


@dataclass
class CrossValidationArguments:
    num_folds: int = field(
        default=0,
        metadata={"help": "stratified k-fold cross-validation over train+validation (THAU: 5); 0: off"},
    )
    transcript_in_prompt: bool = field(
        default=False,
        metadata={
            "help": "ABHINAYA ST1: the transcript (--transcript_column) goes into the prompt with the audio"
        },
    )
    transcript_column: str = "transcript"


def train_and_evaluate(
    model_args,
    data_args,
    training_args,
    labels,
    splits,
    eval_split: str,
    output_dir: str,
    with_text=False,
    prosody_statistics=None,
):
    """Train the projector on ``splits['train']`` (cached), keep the best epoch by macro-F1 on
    ``splits[eval_split]``; returns (classifier, trainer, processor, train seconds).
    ``prosody_statistics``: the training split's (``--speaker_prosody``; ``speaker_prosody_columns``)."""
    model, processor = build_model(model_args, labels)
    model.freeze_language_model()  # THAU: only the projector trains (and, with --speaker_prosody, its MLP)
    if model.prosody is not None:
        model.prosody.set_statistics(*prosody_statistics)
        model.config.speaker_normalization = SPEAKER_PROSODY_NOTE  # serhub.heldout / evaluate enrol
        model.config.speaker_reference = data_args.speaker_reference  # as serhub.heldout reads it
    counts = class_counts(splits["train"], "labels", len(labels))
    classifier = model.as_classifier("label_logits")
    classifier.config.backbone_weights = "referenced"  # checkpoints hold the projector, not the backbones
    if with_text:  # ST1: the pipeline alone cannot give it a transcript; the model says so
        classifier.config.prompt["reads_transcript"] = True
    classifier.train()
    logger.info("%s; class counts %s", classifier.trainable_parameters(), dict(zip(labels, counts)))

    def compute_metrics(eval_pred):
        logits = (
            eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        )
        refs = eval_pred.label_ids
        return scalar_metrics(
            classification_metrics(
                [labels[i] for i in logits.argmax(-1)], [labels[i] for i in refs], labels=labels
            )
        )

    args = dataclasses.replace(training_args, output_dir=output_dir, label_names=["labels"])
    trainer = AudioLLMTrainer(
        model=classifier,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=splits[eval_split],
        data_collator=CachedAudioLLMCollator(
            processor, "ser", labels, class_targets=True, fixed_prompt=True, transcript_in_prompt=with_text
        ),
        processing_class=processor,
        objective=AudioLLMObjective(
            classification_loss=build_classification_loss(model_args.loss_type, counts)
        ),
        compute_metrics=compute_metrics,
        callbacks=[timer := EpochTimer()],
        prosody_learning_rate=model_args.prosody_learning_rate if model_args.speaker_prosody else None,
    )
    last = last_complete_checkpoint(output_dir) if Path(output_dir).is_dir() else None
    if last:
        logger.info("resuming from %s", last)
    start = time.time()
    trainer.train(resume_from_checkpoint=last)
    trainer.epoch_seconds = timer.epoch_seconds
    return classifier, trainer, processor, time.time() - start


def split_metrics(logits, label_ids, labels, bootstrap=0, seed=0, speakers=None) -> dict:
    """serhub's ser_metrics of a split's argmax (with a bootstrap interval if asked); with ``speakers``
    (one per row) each speaker's macro-F1 too, and with a bootstrap the lowest one expected by chance."""
    predictions, references = [labels[i] for i in logits.argmax(-1)], [labels[i] for i in label_ids]
    metrics = classification_metrics(predictions, references, labels=labels, bootstrap=bootstrap, seed=seed)
    if speakers is not None:
        metrics.update(speaker_scores(predictions, references, speakers, labels, bootstrap, seed))
    return metrics


def predict(trainer, dataset, labels, bootstrap=0, seed=0) -> dict:
    return split_metrics(*trainer_logits(trainer, dataset), labels, bootstrap, seed)


def encode_splits(
    model_args, data_args, training_args, raw, labels, text_column=None
) -> tuple[dict, float, tuple]:
    """Every split through the frozen encoder once (cached): the only time the encoder runs. With
    ``text_column`` (ST1) the transcripts are kept beside the cached states, as "transcript"; with
    ``--speaker_prosody`` each clip's prosody numbers and its speaker's reference (then the training
    split's prosody statistics are returned too, else None)."""
    encoder_model, processor = build_model(dataclasses.replace(model_args, init_connector=None), labels)
    start = time.time()
    cached, sources = {}, {}
    with training_args.main_process_first(desc="encoder cache"):
        for s in [s for s in (data_args.train_split, data_args.eval_split, data_args.test_split) if s]:
            audio = raw[s].cast_column("audio", datasets.Audio(sampling_rate=16000))
            if text_column:
                if text_column not in audio.column_names:
                    raise ValueError(
                        f"--transcript_in_prompt needs transcripts: split {s!r} has no {text_column!r} column "
                        f"(columns: {audio.column_names}); set --transcript_column"
                    )
                if text_column != "transcript":
                    audio = audio.remove_columns([c for c in ["transcript"] if c in audio.column_names])
                    audio = audio.rename_column(text_column, "transcript")
            audio = encode_labels(audio, data_args.label_column, labels)
            sources[s] = audio
            keep = ("labels", "transcript") if text_column else ("labels",)
            cache = encoder_cache_dir(data_args, training_args.output_dir)
            batch_size = training_args.per_device_eval_batch_size
            if s == data_args.train_split:  # --augment: fixed augmented copies, each encoded once
                cached[s] = cache_training_split(
                    encoder_model, processor, audio, cache, s, batch_size, keep, data_args, training_args.seed
                )
            else:
                cached[s] = cache_split(encoder_model, processor, audio, cache, s, batch_size, keep)
        statistics = None
        if model_args.speaker_prosody:
            cached, statistics = speaker_prosody_columns(
                cached, sources, data_args.speaker_column, labels, data_args.train_split,
                data_args.speaker_reference,
            )  # fmt: skip
    return cached, time.time() - start, statistics


def cross_validate(
    model_args,
    data_args,
    training_args,
    labels,
    cached,
    num_folds: int,
    with_text=False,
    prosody_statistics=None,
) -> dict:
    """THAU's stratified k-fold cross-validation over train + validation; each fold trains anew."""
    from serhub.datasets_scripts.splits import stratified_kfold

    out = training_args.output_dir
    pool = datasets.concatenate_datasets([cached[data_args.train_split], cached[data_args.eval_split]])
    fold_args = dataclasses.replace(
        training_args, load_best_model_at_end=False, save_strategy="no", eval_strategy="no"
    )
    scores = []
    for k, (train_idx, held_idx) in enumerate(
        stratified_kfold(pool["labels"], num_folds, seed=training_args.seed)
    ):
        fold = {"train": pool.select(train_idx), "held_out": pool.select(held_idx)}
        _, trainer, _, _ = train_and_evaluate(
            model_args, data_args, fold_args, labels, fold, "held_out", f"{out}/fold{k}", with_text,
            prosody_statistics,
        )  # fmt: skip
        scores.append(predict(trainer, fold["held_out"], labels)["macro_f1"])
        logger.info("fold %d: macro-F1 %.4f", k, scores[-1])
    cv = {
        "folds": scores,
        "macro_f1_mean": statistics.mean(scores),
        "macro_f1_std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
    }
    write_json(f"{out}/cross_validation.json", cv)
    logger.info("%d-fold macro-F1 %.4f ± %.4f", num_folds, cv["macro_f1_mean"], cv["macro_f1_std"])
    return cv


def card_settings(model_args, data_args, training_args, results: dict, summary: dict) -> dict:
    """The model card's arguments (see ``reporting.write_model_card``); ``summary``: eval_results.json's
    run figures (cross-validation, calibration)."""
    cv = summary.get("cross_validation")
    config = {
        "audio model": model_args.audio_model_name_or_path,
        "LLM (frozen)": model_args.text_model_name_or_path,
        "connector": connector_class(model_args.connector).describe(model_args),
        **connector_start(model_args),
        **speaker_prosody_row(model_args),
        "loss": model_args.loss_type,
        "learning rate": training_args.learning_rate,
        "epochs": training_args.num_train_epochs,
    }
    if cv:
        config["cross-validation macro-F1"] = f"{cv['macro_f1_mean']:.4f} ± {cv['macro_f1_std']:.4f}"
    return {
        "template": "audio_llm.md",
        "model_name": "serhub-whisper-llm",
        "dataset_name": data_args.dataset_name_or_path or "synthetic_emotions",
        "results": results,
        "base_model": model_args.text_model_name_or_path,
        "tags": ["whisper_llm", "audio-llm"],
        "wer": None,
        "training_config": config,
        "calibration": summary.get("calibration"),
    }


# what main() parses (and every config in recipes/configs/whisper_llm/ must parse with)
ARGUMENTS = (AudioLLMArguments, DataArguments, CrossValidationArguments, RunArguments, TrainingArguments)


def main(argv=None):
    model_args, data_args, cv_args, run_args, training_args, push_to_hub = start_run(
        ARGUMENTS,
        DEFAULT_CONFIG,
        argv,
    )
    out = training_args.output_dir
    with training_args.main_process_first(desc="dataset"):
        raw = load_dataset_dict(data_args.dataset_name_or_path, data_args)
    labels = resolve_labels(raw, data_args)
    if model_args.speaker_prosody:  # before the output folder is claimed
        require_splits(raw, [data_args.train_split])
        check_speaker_data("--speaker_prosody", data_args, raw[data_args.train_split].column_names)
    settings = run_settings(
        training_args, labels, dict(raw), model_args, data_args, cv_args, exclude=("bootstrap",)
    )
    run_lock = claim_output_dir(  # noqa: F841 (held until the process exits)
        out, "whisper_llm", settings, run_args.overwrite_output_dir, training_args.process_index == 0
    )
    require_splits(raw, [s for s in (data_args.train_split, data_args.eval_split, data_args.test_split) if s])
    text_column = cv_args.transcript_column if cv_args.transcript_in_prompt else None
    cached, encode_seconds, prosody_statistics = encode_splits(
        model_args, data_args, training_args, raw, labels, text_column
    )
    summary = {
        "encoder_cache_s": round(encode_seconds, 1),
        "labels": labels,
        "world_size": training_args.world_size,
    }
    if cv_args.num_folds:
        summary["cross_validation"] = cross_validate(
            model_args, data_args, training_args, labels, cached, cv_args.num_folds, bool(text_column),
            prosody_statistics,
        )  # fmt: skip

    # ------------------------------------------------------------------ train, evaluate, finish
    splits = {"train": cached[data_args.train_split], data_args.eval_split: cached[data_args.eval_split]}
    classifier, trainer, processor, seconds = train_and_evaluate(
        model_args, data_args, training_args, labels, splits, data_args.eval_split, out, bool(text_column),
        prosody_statistics,
    )  # fmt: skip
    logits = {
        s: trainer_logits(trainer, cached[s]) for s in (data_args.eval_split, data_args.test_split) if s
    }
    results = {data_args.eval_split: split_metrics(*logits[data_args.eval_split], labels)}
    if data_args.test_split:
        test = raw[data_args.test_split]
        speakers = (
            list(test[data_args.speaker_column]) if data_args.speaker_column in test.column_names else None
        )
        results[data_args.test_split] = split_metrics(
            *logits[data_args.test_split], labels, data_args.bootstrap, training_args.seed, speakers
        )

    # ------------------------------------------------------------------ calibrate (temperature on validation)
    held_out = {data_args.test_split: logits[data_args.test_split]} if data_args.test_split else {}
    summary["calibration"] = calibrate(
        classifier, *logits[data_args.eval_split], held_out, fitted_on=data_args.eval_split
    )
    logger.info(calibration_line(summary["calibration"]))
    summary.update(
        train_runtime_s=round(seconds, 1), epoch_seconds=[round(t, 2) for t in trainer.epoch_seconds]
    )
    if not trainer.is_world_process_zero():
        return
    classifier.config.backbone_weights = "included"  # the shared model: self-contained
    if model_args.speaker_prosody:  # the saved extractor measures each clip's prosody numbers too
        processor.feature_extractor = measuring_feature_extractor(processor.feature_extractor)
    finish_run(
        out,
        save=(classifier, processor),
        results=results,
        summary=summary,
        labels=labels,
        confusion=(
            results.get(data_args.test_split) or results[data_args.eval_split],
            "Whisper-LLM (label logits)",
        ),
        history=trainer.state.log_history,
        curves_title="whisper_llm",
        card=card_settings(model_args, data_args, training_args, results, summary),
        training_args=training_args,
        push_to_hub=push_to_hub,
        data_args=data_args,
    )
    scores = ", ".join(f"{split} {r['macro_f1']:.4f}" for split, r in results.items())
    logger.info("macro-F1 %s; saved to %s", scores, out)


if __name__ == "__main__":
    from serhub.recipes.logs import run_main

    run_main(main, sys.argv[1:])
