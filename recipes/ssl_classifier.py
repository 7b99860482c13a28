"""Train a speech-encoder emotion classifier (ABHINAYA S1, the MSP-Podcast challenge baseline).

    accelerate launch recipes/ssl_classifier.py        # embedded default: Whisper tiny.en (frozen, cached) on synthetic_emotions, CPU, ~2 min
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
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field

import datasets
import numpy as np
import torch
from serhub.datasets_scripts.common import class_counts
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics, dimensional_metrics
from serhub.modeling import (
    SpeechEmotionConfig,
    SpeechEmotionFeatureExtractor,
    SpeechEmotionForAudioClassification,
)
from serhub.modeling.offline_assets import resolve_pretrained
from serhub.recipes.arguments import CONFIGS, DataArguments, RunArguments, config_kwargs, start_run
from serhub.recipes.audio_llm_common import per_speaker_macro_f1
from serhub.recipes.data import (
    cache_encoder_outputs,
    encode_labels,
    load_dataset_dict,
    pad_cached_states,
    require_splits,
    resolve_labels,
)
from serhub.recipes.logs import get_logger
from serhub.recipes.reporting import EpochTimer, calibration_line, finish_run, scalar_metrics
from serhub.recipes.run_folders import claim_output_dir, fingerprint, last_complete_checkpoint, run_settings
from transformers import Trainer, TrainingArguments

from serhub.augment import Augmenter
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
    speaker_norm: bool = field(
        default=False,
        metadata={
            "help": "standardise the cached encoder frames per speaker (--speaker_column): training speakers "
            "with their own statistics, validation and test speakers with theirs (transductive); the test "
            "split is also scored per recording (each clip with its own statistics). Needs the encoder cache"
        },
    )


# ----------------------------------------------------------------------------------------------
# Collators (defined here: only this recipe uses them)
# ----------------------------------------------------------------------------------------------
@dataclass
class AudioCollator:
    """Raw audio -> features with the model's feature extractor (encoder runs in the model)."""

    feature_extractor: SpeechEmotionFeatureExtractor
    dimensions: tuple[str, ...] = ()

    def __call__(self, rows):
        batch = self.feature_extractor(
            [r["audio"]["array"] for r in rows],
            sampling_rate=self.feature_extractor.sampling_rate,
            return_tensors="pt",
        )
        batch["labels"] = torch.tensor([r["labels"] for r in rows])
        if self.dimensions:
            batch["dimensional_labels"] = torch.tensor(
                [[r[d] for d in self.dimensions] for r in rows], dtype=torch.float
            )
        return batch


# Speaker normalisation of the cached encoder frames: each layer's frames standardised (per dimension)
# with a speaker's statistics, the speaker-level z-normalisation of SER features (Busso et al. 2011,
# "Iterative feature normalization for emotional speech detection"). The attentive pooling's weighted
# mean is shift-equivariant (its weights sum to 1), so subtracting a speaker's frame mean subtracts it
# from every pooled mean of that speaker. Evaluated with each test speaker's statistics (transductive,
# as speaker-normalised SER is usually evaluated) and, as what one recording alone allows, per recording.
STD_FLOOR = 1e-3  # float16 frames: a dimension that never moves is divided by this, not by ~0


def frame_statistics(states) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (L+1, D) over the frames of one clip's (T', L+1, D) outputs."""
    x = np.asarray(states, dtype=np.float64)
    return x.mean(axis=0), np.maximum(x.std(axis=0), STD_FLOOR)


def speaker_statistics(cached, speaker_column: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per speaker, the mean and standard deviation (L+1, D) of every frame of their cached clips."""
    sums: dict[str, list] = {}
    for row in cached:
        x = np.asarray(row["encoder_hidden_states"], dtype=np.float64)
        acc = sums.setdefault(str(row[speaker_column]), [0, 0.0, 0.0])
        acc[0] += x.shape[0]
        acc[1] = acc[1] + x.sum(axis=0)
        acc[2] = acc[2] + (x**2).sum(axis=0)
    stats = {}
    for speaker, (n, total, squares) in sums.items():
        mean = total / n
        stats[speaker] = (mean, np.maximum(np.sqrt(np.maximum(squares / n - mean**2, 0.0)), STD_FLOOR))
    return stats


@dataclass
class CachedEncoderCollator:
    """Cached encoder outputs (T', L+1, D) float16 -> a padded float batch (B, L+1, T', D) and mask.

    ``speaker_norm``: None (the frames as cached), ``"speaker"`` (standardised with
    ``speaker_stats[row[speaker_column]]``) or ``"recording"`` (each clip with its own statistics)."""

    dimensions: tuple[str, ...] = ()
    speaker_norm: str | None = None
    speaker_stats: dict = field(default_factory=dict)
    speaker_column: str = "speaker_id"

    def _normalised(self, row) -> dict:
        states = np.asarray(row["encoder_hidden_states"], dtype=np.float32)
        if self.speaker_norm == "recording":
            mean, std = frame_statistics(states)
        else:
            speaker = str(row[self.speaker_column])
            if speaker not in self.speaker_stats:
                raise ValueError(
                    f"no speaker statistics for {speaker!r} (speakers with statistics: {len(self.speaker_stats)}); "
                    "compute them with speaker_statistics() over the split, or normalise per recording"
                )
            mean, std = self.speaker_stats[speaker]
        return {**row, "encoder_hidden_states": ((states - mean) / std).astype(np.float32)}

    def __call__(self, rows):
        if self.speaker_norm:
            rows = [self._normalised(r) for r in rows]
        states, mask = pad_cached_states(rows)  # B, T', L+1, D
        batch = {
            "encoder_hidden_states": states.transpose(1, 2),
            "encoder_attention_mask": mask,
            "labels": torch.tensor([r["labels"] for r in rows]),
        }
        if self.dimensions:
            batch["dimensional_labels"] = torch.tensor(
                [[r[d] for d in self.dimensions] for r in rows], dtype=torch.float
            )
        return batch


def load_splits(data_args, training_args, raw, labels) -> dict:
    """The splits the run uses, at 16 kHz with class ids (``--max_*_samples`` subsets drawn by seed)."""
    limits = {
        data_args.train_split: data_args.max_train_samples,
        data_args.eval_split: data_args.max_eval_samples,
    }
    data = {}
    for split in [s for s in (data_args.train_split, data_args.eval_split, data_args.test_split) if s]:
        ds = raw[split]
        if limits.get(split):
            ds = ds.shuffle(seed=training_args.seed).select(range(min(limits[split], len(ds))))
        data[split] = encode_labels(
            ds.cast_column("audio", datasets.Audio(sampling_rate=16000)), data_args.label_column, labels
        )
    return data


def augmented_copy(dataset, augmenter: Augmenter, copy: int, batch_size: int):
    """One fixed augmented copy of ``dataset`` (``copy`` keys its draws), fingerprinted by the dataset
    and the augmenter, so that its encoder cache is found again on a re-run."""
    return dataset.map(
        augmenter.map_function(epoch=copy),
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        new_fingerprint=fingerprint(dataset._fingerprint, augmenter.fingerprint(copy, batch_size)),
        desc=f"augmenting (copy {copy + 1})",
    )


def encoded_inputs(model, feature_extractor, model_args, data_args, training_args, data):
    """A frozen encoder runs once per split (cached); otherwise the collator feeds raw audio.
    With ``--augment`` the training split (only) is augmented: a fresh copy on every read of raw
    audio, or ``--augment_copies`` fixed copies cached beside the clean one. Returns the datasets to
    train on, their collator and the seconds the cache took."""
    dims = tuple(model.config.dimensions)
    train_split = data_args.train_split
    augmenter = Augmenter(data_args.augment_config(), seed=training_args.seed) if data_args.augment else None
    if not (model.config.freeze_encoder and data_args.cache_encoder_outputs):
        if model_args.speaker_norm:
            raise ValueError(
                "--speaker_norm standardises cached encoder outputs; it needs --freeze_encoder true and "
                "--cache_encoder_outputs true (or leave --speaker_norm off)"
            )
        if augmenter is not None:
            data = {**data, train_split: data[train_split].with_transform(augmenter.transform_function())}
        # the collator reads the raw "audio" column, which is not a forward argument: the Trainer
        # would drop it otherwise
        training_args.remove_unused_columns = False
        return data, AudioCollator(feature_extractor, dims), 0.0
    weights = model_args.model_name_or_path or model_args.encoder_name_or_path
    encoder = (weights, model.config.audio_config.to_dict(), "all layers")
    if model_args.speaker_norm and data_args.speaker_column not in data[train_split].column_names:
        raise ValueError(
            f"--speaker_norm needs each clip's speaker: the data has no {data_args.speaker_column!r} column "
            f"(columns: {data[train_split].column_names}); name it with --speaker_column"
        )
    batch_size = training_args.per_device_eval_batch_size
    sources = dict(data)
    if augmenter is not None:
        for copy in range(data_args.augment_copies):
            sources[f"{train_split}-augment{copy}"] = augmented_copy(
                data[train_split], augmenter, copy, batch_size
            )
    cache_dir = data_args.encoder_cache_dir or f"{training_args.output_dir}/encoder_cache"
    start = time.time()
    with training_args.main_process_first(desc="encoder cache"):
        cached = {
            split: cache_encoder_outputs(
                model.encode, feature_extractor, ds, cache_dir, split, batch_size, ("labels", *dims), encoder
            )
            for split, ds in sources.items()
        }
    seconds = time.time() - start
    logger.info("encoder outputs cached in %.1f s; training never runs the encoder again", seconds)
    if model_args.speaker_norm:  # beside the cache, not in it: the same cache serves runs without it
        cached = {
            split: ds.add_column(
                data_args.speaker_column, list(sources[split][data_args.speaker_column])
            ).with_format("numpy")
            for split, ds in cached.items()
        }
    copies = [cached.pop(name) for name in list(cached) if name.startswith(f"{train_split}-augment")]
    if copies:
        cached[train_split] = datasets.concatenate_datasets([cached[train_split], *copies]).with_format(
            "numpy"
        )
        logger.info(
            "training on the clean split and %d augmented copies: %d clips",
            len(copies),
            len(cached[train_split]),
        )
    collator = CachedEncoderCollator(dims)
    if model_args.speaker_norm:
        stats = {}
        for split, ds in cached.items():
            split_stats = speaker_statistics(ds, data_args.speaker_column)
            shared = sorted(set(split_stats) & set(stats))
            if shared:
                raise ValueError(
                    f"--speaker_norm: speakers {shared[:5]} are in split {split!r} and another; speaker "
                    "normalisation is evaluated on speaker-independent splits"
                )
            stats.update(split_stats)
        logger.info(
            "speaker normalisation: encoder frames standardised per speaker (%d speakers; validation and "
            "test speakers with their own statistics, transductively)",
            len(stats),
        )
        collator = CachedEncoderCollator(dims, "speaker", stats, data_args.speaker_column)
        training_args.remove_unused_columns = False  # the collator reads the speaker column
    return cached, collator, seconds


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


def train(model, feature_extractor, training_args, data, collator, data_args, labels):
    """Train (resuming the last complete checkpoint); returns the trainer, its result, the epoch
    timer and the seconds it took."""
    dims = tuple(model.config.dimensions)
    # What the Trainer collects as references at evaluation (its default would be every forward
    # argument named *label*, and it skips metrics when one of them is absent).
    training_args.label_names = ["labels", "dimensional_labels"] if dims else ["labels"]
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=data[data_args.train_split],
        eval_dataset=data[data_args.eval_split],
        data_collator=collator,
        processing_class=feature_extractor,
        compute_metrics=lambda p: scalar_metrics(scores(p.predictions, p.label_ids, labels, dims)),
        callbacks=[timer := EpochTimer()],
    )
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
            results[name]["per_speaker_macro_f1"] = per_speaker_macro_f1(
                [labels[i] for i in logits.argmax(-1)], [labels[i] for i in refs], speakers, labels
            )
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
        },
    }


# what main() parses (and every config in recipes/configs/ssl_classifier/ must parse with)
ARGUMENTS = (ModelArguments, DataArguments, RunArguments, TrainingArguments)


def main(argv=None):
    model_args, data_args, run_args, training_args, push_to_hub = start_run(ARGUMENTS, DEFAULT_CONFIG, argv)
    with training_args.main_process_first(desc="dataset"):
        raw = load_dataset_dict(data_args.dataset_name_or_path)
    require_splits(raw, [s for s in (data_args.train_split, data_args.eval_split, data_args.test_split) if s])
    model = None
    if model_args.model_name_or_path:  # continue from a serhub classifier
        source = resolve_pretrained(model_args.model_name_or_path)
        model = SpeechEmotionForAudioClassification.from_pretrained(source)
        feature_extractor = SpeechEmotionFeatureExtractor.from_pretrained(source)
    labels = resolve_labels(raw, data_args, known=model.config.id2label if model else None)
    data = load_splits(data_args, training_args, raw, labels)
    settings = run_settings(training_args, labels, dict(raw), model_args, data_args, exclude=("bootstrap",))
    run_lock = claim_output_dir(  # noqa: F841 (held until the process exits)
        training_args.output_dir,
        "ssl_classifier",
        settings,
        run_args.overwrite_output_dir,
        training_args.process_index == 0,
    )
    counts = class_counts(data[data_args.train_split], "labels", len(labels))
    if model is None:
        encoder = resolve_pretrained(model_args.encoder_name_or_path)
        model = SpeechEmotionForAudioClassification.from_encoder_pretrained(
            encoder, labels, class_counts=counts, **config_kwargs(model_args, SpeechEmotionConfig)
        )
        feature_extractor = SpeechEmotionFeatureExtractor.from_encoder_pretrained(encoder)
    if model_args.speaker_norm:
        # saved in config.json so that whoever loads the model knows its head expects standardised
        # frames (the model itself does not normalise; see the recipe's CachedEncoderCollator)
        model.config.speaker_normalization = "encoder frames standardised per speaker (ssl_classifier)"
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("labels %s; training class counts %s", labels, dict(zip(labels, counts)))
    logger.info("trainable parameters: %s of %s", f"{trainable:,}", f"{total:,}")
    test_split = data.get(data_args.test_split)
    speakers = (  # before caching, which keeps only what training reads
        list(test_split[data_args.speaker_column])
        if test_split is not None and data_args.speaker_column in test_split.column_names
        else None
    )
    data, collator, encode_seconds = encoded_inputs(
        model, feature_extractor, model_args, data_args, training_args, data
    )

    dims = tuple(model.config.dimensions)
    trainer, train_result, timer, train_seconds = train(
        model, feature_extractor, training_args, data, collator, data_args, labels
    )
    out = training_args.output_dir

    # ------------------------------------------------------------------ evaluate, finish
    results = {data_args.eval_split: trainer.evaluate()}
    # a temperature fitted on validation (the pipeline's scores calibrated; argmax unchanged), checked on test
    held_out = {data_args.test_split: data[data_args.test_split]} if data_args.test_split else {}
    calibration = calibrate_with_trainer(
        trainer, data[data_args.eval_split], held_out, fitted_on=data_args.eval_split
    )
    logger.info(calibration_line(calibration))
    if data_args.test_split:
        results.update(test_results(trainer, data, data_args, training_args, labels, dims, speakers))
    if not trainer.is_world_process_zero():
        return
    dataset_name = data_args.dataset_name_or_path or "synthetic_emotions"
    summary = {
        "train_runtime_s": round(train_seconds, 1),
        "encoder_cache_s": round(encode_seconds, 1),
        "epoch_seconds": [round(t, 2) for t in timer.epoch_seconds],
        "train_loss": train_result.training_loss,
        "labels": labels,
        "class_counts": counts,
        "world_size": training_args.world_size,
        "calibration": calibration,
    }
    test = results.get(data_args.test_split)
    finish_run(
        out,
        save=(model, feature_extractor),
        results=results,
        summary=summary,
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
    )
    logger.info("test macro-F1 %.4f; saved to %s", (test or {}).get("macro_f1", float("nan")), out)


if __name__ == "__main__":
    from serhub.recipes.logs import run_main

    run_main(main, sys.argv[1:])
