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

The data side (splits, collators, augmentation, the encoder cache, speaker normalisation) is in
recipes/ssl_classifier_data.py.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field

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
    check_speaker_data,
    measuring_feature_extractor,
)
from serhub.recipes.ssl_classifier_data import (
    AudioCollator,
    CachedEncoderCollator,
    augmented_copy,
    encoded_inputs,
    frame_statistics,
    load_splits,
    speaker_statistics,
    training_speakers,
)
from transformers import Trainer, TrainingArguments

from serhub.calibration import calibrate_with_trainer

DEFAULT_CONFIG = CONFIGS / "ssl_classifier" / "default.yaml"
logger = get_logger("ssl_classifier")


@dataclass
class ModelArguments:
    encoder_name_or_path: str = field(
        default="offline:whisper-tiny.en",
        metadata={
            "help": "speech encoder (Hub id, folder or offline:<name>): WavLM, HuBERT, wav2vec2, data2vec-audio, Whisper"
        },
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "continue from a serhub classifier instead"}
    )
    use_weighted_layer_sum: bool = True
    frame_norm: str = field(
        default="global",
        metadata={
            "help": "global: standardise every encoder layer's frames with training-set statistics (kept in "
            "the model); none: the raw frames"
        },
    )
    freeze_encoder: bool = True
    freeze_feature_encoder: bool = True
    num_trainable_encoder_layers: int | None = None
    loss_type: str = field(
        default="weighted_ce", metadata={"help": "ce | weighted_ce | focal | vector_scaling"}
    )
    focal_gamma: float = 2.0
    vs_gamma: float = 0.2
    vs_tau: float = 1.0
    class_weighting: str = "inverse"
    head_hidden_size: int = 256
    pooling_attention_size: int = 128
    head_dropout: float = 0.1
    dimensions: list[str] = field(
        default_factory=list, metadata={"help": "e.g. arousal valence dominance: adds a CCC-trained head"}
    )
    trim_silence_db: float | None = field(
        default=None,
        metadata={
            "help": "cut each clip's leading/trailing audio quieter than this many dB below its loudest frame, "
            "in training and in the saved model's feature extractor (so uncut clips and the timeline's voice "
            "segments look alike to it), e.g. 35; default: clips as given"
        },
    )
    trim_noise_margin_db: float | None = field(
        default=None,
        metadata={
            "help": "with --trim_silence_db: a frame is speech only if it is also this many dB above the clip's "
            "noise floor, so a noisy recording's pauses are cut too (e.g. 10); default: the loudest frame alone"
        },
    )
    speaker_prosody: bool = field(
        default=False,
        metadata={
            "help": "the head also reads ten measured prosody numbers per clip (pitch level, spread and movement, "
            "voicing, rhythm) minus the speaker's reference: their mean over 2 of the speaker's clips, neutral "
            "first (--speaker_column); at inference the speaker is enrolled (model.enroll_speaker, serhub "
            "evaluate --enroll_per_speaker). Needs the encoder cache and swift-f0"
        },
    )
    speaker_adversary_weight: float = field(
        default=0.0,
        metadata={
            "help": "> 0: a speaker adversary learns to name each clip's training speaker (--speaker_column) "
            "from the head's hidden layer, and the head learns (with this weight) hidden layers from which "
            "its guess is uniform; training only, the saved model is used as without it. 0: off"
        },
    )
    speaker_adversary_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "the speaker adversary's own learning rate (default: --learning_rate); it must learn to "
            "name the speakers before its guess tells the head anything"
        },
    )
    speaker_norm: bool = field(
        default=False,
        metadata={
            "help": "standardise the cached encoder frames per speaker (--speaker_column): training speakers "
            "with their own statistics, validation and test speakers with theirs (transductive); the test "
            "split is also scored per recording (each clip with its own statistics). Needs the encoder cache"
        },
    )


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


def check_speaker_adversary(model_args) -> None:
    """``--speaker_adversary_weight`` as given, before anything is loaded."""
    weight = model_args.speaker_adversary_weight
    if not weight == weight or weight < 0:  # NaN too
        raise ValueError(
            f"--speaker_adversary_weight is the speaker-confusion loss's weight, >= 0 (0: off); found {weight}"
        )
    if weight > 0 and model_args.model_name_or_path:
        raise ValueError(
            "--speaker_adversary_weight trains a new model's speaker adversary; it cannot be added when "
            "continuing from --model_name_or_path (leave it at 0)"
        )


def speaker_adversary_speakers(model_args, data_args, data) -> list[str] | None:
    """The training speakers a speaker adversary names (``--speaker_adversary_weight`` > 0), checked
    before any write; None without one."""
    if model_args.speaker_adversary_weight == 0:
        return None
    train = data[data_args.train_split]
    check_speaker_data("--speaker_adversary_weight", data_args, train.column_names, heldout_enrols=False)
    speakers = training_speakers(train, data_args.speaker_column)
    if len(speakers) < 2:
        raise ValueError(
            f"--speaker_adversary_weight needs at least 2 training speakers to tell apart; the training split "
            f"has {len(speakers)} in {data_args.speaker_column!r}"
        )
    logger.info(
        "speaker adversary over %d training speakers (confusion weight %.3g)",
        len(speakers),
        model_args.speaker_adversary_weight,
    )
    return speakers


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
