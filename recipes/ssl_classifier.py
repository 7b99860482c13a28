"""Train a speech-encoder emotion classifier (ABHINAYA S1, the MSP-Podcast challenge baseline).

    accelerate launch recipes/ssl_classifier.py        # embedded default: Whisper tiny.en (frozen, cached) on synthetic_emotions_v2, CPU
    accelerate launch --config_file recipes/accelerate_configs/cpu_ddp.yaml recipes/ssl_classifier.py --use_cpu true  # 2-process DDP, CPU
    accelerate launch recipes/ssl_classifier.py --config recipes/configs/ssl_classifier/abhinaya_s1_wavlm_large.yaml \\
        --dataset_name_or_path data/msp_podcast

Any argument of ModelArguments, DataArguments or transformers' TrainingArguments can be given in
the YAML or on the command line (the command line wins). With no --config the embedded default
(recipes/configs/ssl_classifier/default.yaml) is used. Re-running with the same --output_dir resumes
from its last checkpoint.

Outputs in --output_dir: the best model (by validation macro-F1) with its feature extractor and
remote code, eval_results.json, confusion_matrix.png (test split), training_curves.png, README.md
(model card with model-index results). --push_to_hub --hub_model_id NAME uploads that folder.

The model arguments and the speaker-adversary checks are in recipes/ssl_classifier_arguments.py; the
data side (splits, collators, augmentation, the encoder cache, speaker normalisation) in
recipes/ssl_classifier_data.py.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from serhub.datasets_scripts.common import class_counts
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics, dimensional_metrics, speaker_scores
from serhub.modeling import (
    SpeechEmotionConfig,
    SpeechEmotionFeatureExtractor,
    SpeechEmotionForAudioClassification,
)
from serhub.modeling.offline_assets import resolve_pretrained
from serhub.recipes.arguments import CONFIGS, DataArguments, RunArguments, config_kwargs, start_run
from serhub.recipes.data import load_dataset_dict, require_splits, resolve_labels, with_trimming
from serhub.recipes.logs import get_logger
from serhub.recipes.optim import LoraLearningRateMixin
from serhub.recipes.reporting import EpochTimer, calibration_line, finish_run, scalar_metrics
from serhub.recipes.run_folders import claim_output_dir, last_complete_checkpoint, run_settings
from serhub.recipes.speaker_prosody import (
    SPEAKER_PROSODY_NOTE,
    measuring_feature_extractor,
)
from serhub.recipes.ssl_classifier_arguments import (
    ModelArguments,
    check_speaker_adversary,
    speaker_adversary_speakers,
)
from serhub.recipes.ssl_classifier_data import (
    AudioCollator,
    CachedEncoderCollator,
    augmented_copy,
    encoded_inputs,
    frame_statistics,
    load_splits,
    speaker_statistics,
)
from transformers import Trainer, TrainingArguments

from serhub.calibration import calibrate_with_trainer

DEFAULT_CONFIG = CONFIGS / "ssl_classifier" / "default.yaml"
logger = get_logger("ssl_classifier")


def scores(predictions, label_ids, labels, dims, **bootstrap) -> dict:
    """Classification metrics (and CCC per dimension) of a prediction's logits."""
    logits = predictions[0] if isinstance(predictions, tuple) else predictions
    refs = label_ids[0] if isinstance(label_ids, tuple) else label_ids
    out = classification_metrics(
        [labels[i] for i in logits.argmax(-1)], [labels[i] for i in refs], labels=labels, **bootstrap
    )
    if dims and isinstance(predictions, tuple):
        out.update(dimensional_metrics(predictions[1], label_ids[1], dims))
    return out


class ClassifierTrainer(LoraLearningRateMixin, Trainer):
    """The stock Trainer; a speaker adversary's parameters may take a rate of their own."""


def train(
    model,
    feature_extractor,
    training_args,
    data,
    collator,
    data_args,
    labels,
    speaker_adversary_learning_rate: float | None = None,
):
    """Train (resuming the last complete checkpoint); returns the trainer, its result, the epoch
    timer and the seconds it took."""
    dims = tuple(model.config.dimensions)
    # What the Trainer collects as references at evaluation (its default would be every forward
    # argument named *label*, and it skips metrics when one of them is absent).
    training_args.label_names = ["labels", "dimensional_labels"] if dims else ["labels"]
    trainer = ClassifierTrainer(
        model=model,
        args=training_args,
        train_dataset=data[data_args.train_split],
        eval_dataset=data[data_args.eval_split],
        data_collator=collator,
        processing_class=feature_extractor,
        compute_metrics=lambda p: scalar_metrics(scores(p.predictions, p.label_ids, labels, dims)),
        callbacks=[timer := EpochTimer()],
    )
    trainer.speaker_adversary_learning_rate = speaker_adversary_learning_rate  # None: --learning_rate
    out = training_args.output_dir
    last = last_complete_checkpoint(out) if os.path.isdir(out) else None
    if last:
        logger.info("resuming from %s", last)
    start = time.time()
    result = trainer.train(resume_from_checkpoint=last)
    return trainer, result, timer, time.time() - start


def test_results(trainer, data, data_args, training_args, labels, dims, speakers=None) -> dict:
    """The test split's scores, with the bootstrap interval and, given ``speakers`` (one per test
    clip), each speaker's macro-F1. With speaker normalisation they are those of each test speaker's
    own statistics (transductive, the usual protocol for speaker-normalised SER), and
    ``per_recording`` holds the scores with each clip standardised by its own statistics: what one
    recording of an unknown speaker allows."""
    test = data[data_args.test_split]
    collator = trainer.data_collator
    variants = {"": collator}
    if getattr(collator, "speaker_norm", None) == "speaker":
        variants["per_recording"] = dataclasses.replace(collator, speaker_norm="recording")
    results = {}
    for name, variant in variants.items():
        trainer.data_collator = variant
        prediction = trainer.predict(test)
        results[name] = scores(
            prediction.predictions,
            prediction.label_ids,
            labels,
            dims,
            bootstrap=data_args.bootstrap,
            seed=training_args.seed,
        )
        if speakers is not None:
            logits, refs = prediction.predictions, prediction.label_ids
            logits, refs = (logits[0], refs[0]) if isinstance(logits, tuple) else (logits, refs)
            named = ([labels[i] for i in logits.argmax(-1)], [labels[i] for i in refs], speakers, labels)
            results[name].update(speaker_scores(*named, data_args.bootstrap, training_args.seed))
    trainer.data_collator = collator
    test_scores = results.pop("")
    if results:
        test_scores["speaker_normalisation"] = "per test speaker (transductive)"
        test_scores.update(results)
    return {data_args.test_split: test_scores}


def card_settings(model, model_args, data_args, training_args, dataset_name: str, results: dict) -> dict:
    """The model card's arguments (see ``reporting.write_model_card``)."""
    return {
        "template": "speech_emotion.md",
        "model_name": "serhub-ssl-classifier",
        "dataset_name": dataset_name,
        "results": {
            split: {k.removeprefix("eval_"): v for k, v in r.items()} for split, r in results.items()
        },
        "base_model": model_args.encoder_name_or_path,
        "tags": ["ssl_classifier"],
        "training_config": {
            "encoder": model_args.encoder_name_or_path,
            "loss_type": model.config.loss_type,
            "freeze_encoder": model.config.freeze_encoder,
            "learning_rate": training_args.learning_rate,
            "epochs": training_args.num_train_epochs,
            "batch_size": training_args.per_device_train_batch_size,
            "seed": training_args.seed,
            "augment": data_args.augment,
            "speaker_norm": (
                "encoder frames standardised per speaker; test scored with each test speaker's "
                "statistics (transductive), and per recording"
                if model_args.speaker_norm
                else False
            ),
            "speaker_adversary": (
                f"speaker adversary over {model.config.speaker_adversary_speakers} training speakers, "
                f"confusion weight {model.config.speaker_adversary_weight:g} (training only)"
                if getattr(model.config, "speaker_adversary_speakers", 0)
                else False
            ),
        },
    }


def continued_model(model_args):
    """``(model, feature_extractor)`` of the serhub classifier to continue from
    (``--model_name_or_path``), or ``(None, None)`` to build one from the encoder."""
    if not model_args.model_name_or_path:
        return None, None
    source = resolve_pretrained(model_args.model_name_or_path)
    feature_extractor = with_trimming(
        SpeechEmotionFeatureExtractor.from_pretrained(source),
        model_args.trim_silence_db,
        model_args.trim_noise_margin_db,
    )
    return SpeechEmotionForAudioClassification.from_pretrained(source), feature_extractor


def new_model(model_args, labels: list[str], counts: list[int], num_speakers: int = 0):
    """``(model, feature_extractor)`` built on ``--encoder_name_or_path`` (class counts for the loss;
    ``num_speakers``: the training speakers a speaker adversary names)."""
    encoder = resolve_pretrained(model_args.encoder_name_or_path)
    model = SpeechEmotionForAudioClassification.from_encoder_pretrained(
        encoder,
        labels,
        class_counts=counts,
        speaker_adversary_speakers=num_speakers,
        **config_kwargs(model_args, SpeechEmotionConfig),
    )
    feature_extractor = SpeechEmotionFeatureExtractor.from_encoder_pretrained(encoder)
    return model, with_trimming(
        feature_extractor, model_args.trim_silence_db, model_args.trim_noise_margin_db
    )


def note_model(model, model_args, labels: list[str], counts: list[int]) -> None:
    """Mark a speaker-normalised model in its config, and log the labels and parameter counts."""
    notes = []
    if model_args.speaker_norm:
        # saved in config.json so that whoever loads the model knows its head expects standardised
        # frames (the model itself does not normalise; see the recipe's CachedEncoderCollator)
        notes.append("encoder frames standardised per speaker (ssl_classifier)")
    if model_args.speaker_prosody:  # enrolment gives the reference (serhub.heldout and evaluate enrol)
        notes.append(SPEAKER_PROSODY_NOTE)
    if notes:
        model.config.speaker_normalization = "; ".join(notes)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("labels %s; training class counts %s", labels, dict(zip(labels, counts)))
    logger.info("trainable parameters: %s of %s", f"{trainable:,}", f"{total:,}")


def clip_speakers(split, speaker_column: str) -> list[str] | None:
    """The speaker of each clip of ``split``, when there is a split and it has the speaker column (read
    before caching, which keeps only what training reads)."""
    if split is None or speaker_column not in split.column_names:
        return None
    return list(split[speaker_column])


def evaluate(trainer, data, data_args, training_args, labels, dims, speakers) -> tuple[dict, dict]:
    """``(results, calibration)``: the validation scores, a temperature fitted on validation (the
    pipeline's scores calibrated; argmax unchanged) and checked on test, and the test scores."""
    results = {data_args.eval_split: trainer.evaluate()}
    held_out = {data_args.test_split: data[data_args.test_split]} if data_args.test_split else {}
    calibration = calibrate_with_trainer(
        trainer, data[data_args.eval_split], held_out, fitted_on=data_args.eval_split
    )
    logger.info(calibration_line(calibration))
    if data_args.test_split:
        results.update(test_results(trainer, data, data_args, training_args, labels, dims, speakers))
    return results, calibration


def run_summary(train_result, timer, seconds: tuple[float, float], labels, counts, training_args) -> dict:
    """eval_results.json's run summary: ``seconds`` are (training, encoder cache)."""
    train_seconds, encode_seconds = seconds
    return {
        "train_runtime_s": round(train_seconds, 1),
        "encoder_cache_s": round(encode_seconds, 1),
        "epoch_seconds": [round(t, 2) for t in timer.epoch_seconds],
        "train_loss": train_result.training_loss,
        "labels": labels,
        "class_counts": counts,
        "world_size": training_args.world_size,
    }


# what main() parses (and every config in recipes/configs/ssl_classifier/ must parse with)
ARGUMENTS = (ModelArguments, DataArguments, RunArguments, TrainingArguments)


def main(argv=None):
    model_args, data_args, run_args, training_args, push_to_hub = start_run(ARGUMENTS, DEFAULT_CONFIG, argv)
    check_speaker_adversary(model_args)

    # ------------------------------------------------------------------ data
    with training_args.main_process_first(desc="dataset"):
        raw = load_dataset_dict(data_args.dataset_name_or_path)
    require_splits(raw, [s for s in (data_args.train_split, data_args.eval_split, data_args.test_split) if s])
    model, feature_extractor = continued_model(model_args)
    labels = resolve_labels(raw, data_args, known=model.config.id2label if model else None)
    data = load_splits(data_args, training_args, raw, labels)
    adversary_speakers = speaker_adversary_speakers(model_args, data_args, data)  # checked before any write
    settings = run_settings(training_args, labels, dict(raw), model_args, data_args, exclude=("bootstrap",))
    run_lock = claim_output_dir(  # noqa: F841 (held until the process exits)
        training_args.output_dir,
        "ssl_classifier",
        settings,
        run_args.overwrite_output_dir,
        training_args.process_index == 0,
    )
    counts = class_counts(data[data_args.train_split], "labels", len(labels))

    # ------------------------------------------------------------------ model
    if model is None:
        model, feature_extractor = new_model(model_args, labels, counts, len(adversary_speakers or ()))
    note_model(model, model_args, labels, counts)
    if model_args.speaker_prosody:  # the reference it learnt with: serhub.heldout reads it the same way
        model.config.speaker_reference = data_args.speaker_reference
    speakers = clip_speakers(data.get(data_args.test_split), data_args.speaker_column)  # before caching
    data, collator, encode_seconds = encoded_inputs(
        model, feature_extractor, model_args, data_args, training_args, data, adversary_speakers
    )

    # ------------------------------------------------------------------ train
    dims = tuple(model.config.dimensions)
    trainer, train_result, timer, train_seconds = train(
        model,
        feature_extractor,
        training_args,
        data,
        collator,
        data_args,
        labels,
        model_args.speaker_adversary_learning_rate,
    )
    out = training_args.output_dir

    # ------------------------------------------------------------------ evaluate
    results, calibration = evaluate(trainer, data, data_args, training_args, labels, dims, speakers)
    if not trainer.is_world_process_zero():
        return

    # ------------------------------------------------------------------ save, card, push
    dataset_name = data_args.dataset_name_or_path or "synthetic_emotions"
    summary = run_summary(train_result, timer, (train_seconds, encode_seconds), labels, counts, training_args)
    test = results.get(data_args.test_split)
    if model_args.speaker_prosody:  # the saved extractor measures each clip's prosody numbers too
        feature_extractor = measuring_feature_extractor(feature_extractor)
    finish_run(
        out,
        save=(model, feature_extractor),
        results=results,
        summary=summary | {"calibration": calibration},
        labels=labels,
        confusion=(test, f"{dataset_name} {data_args.test_split}") if test else None,
        history=trainer.state.log_history,
        curves_title="ssl_classifier",
        card={
            **card_settings(model, model_args, data_args, training_args, dataset_name, results),
            "calibration": calibration,
        },
        training_args=training_args,
        push_to_hub=push_to_hub,
        data_args=data_args,
    )
    logger.info("test macro-F1 %.4f; saved to %s", (test or {}).get("macro_f1", float("nan")), out)


if __name__ == "__main__":
    from serhub.recipes.logs import run_main

    run_main(main, sys.argv[1:])


__all__ = [
    "ARGUMENTS",
    "DEFAULT_CONFIG",
    "AudioCollator",
    "CachedEncoderCollator",
    "ModelArguments",
    "augmented_copy",
    "encoded_inputs",
    "frame_statistics",
    "load_splits",
    "main",
    "speaker_statistics",
]
