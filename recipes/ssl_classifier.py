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

import os
import sys
import time
from dataclasses import dataclass, field

import datasets
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
from serhub.recipes.data import (
    cache_encoder_outputs,
    encode_labels,
    load_dataset_dict,
    pad_cached_states,
    require_splits,
    resolve_labels,
)
from serhub.recipes.logs import get_logger
from serhub.recipes.reporting import EpochTimer, finish_run, scalar_metrics
from serhub.recipes.run_folders import claim_output_dir, last_complete_checkpoint, run_settings
from transformers import Trainer, TrainingArguments

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


@dataclass
class CachedEncoderCollator:
    """Cached encoder outputs (T', L+1, D) float16 -> a padded float batch (B, L+1, T', D) and mask."""

    dimensions: tuple[str, ...] = ()

    def __call__(self, rows):
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


def encoded_inputs(model, feature_extractor, model_args, data_args, training_args, data):
    """A frozen encoder runs once per split (cached); otherwise the collator feeds raw audio.
    Returns the datasets to train on, their collator and the seconds the cache took."""
    dims = tuple(model.config.dimensions)
    if not (model.config.freeze_encoder and data_args.cache_encoder_outputs):
        # the collator reads the raw "audio" column, which is not a forward argument: the Trainer
        # would drop it otherwise
        training_args.remove_unused_columns = False
        return data, AudioCollator(feature_extractor, dims), 0.0
    weights = model_args.model_name_or_path or model_args.encoder_name_or_path
    encoder = (weights, model.config.audio_config.to_dict(), "all layers")
    start = time.time()
    with training_args.main_process_first(desc="encoder cache"):
        cached = {
            split: cache_encoder_outputs(
                model.encode,
                feature_extractor,
                ds,
                f"{training_args.output_dir}/encoder_cache",
                split,
                training_args.per_device_eval_batch_size,
                ("labels", *dims),
                encoder,
            )
            for split, ds in data.items()
        }
    seconds = time.time() - start
    logger.info("encoder outputs cached in %.1f s; training never runs the encoder again", seconds)
    return cached, CachedEncoderCollator(dims), seconds


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


def card_settings(model, model_args, training_args, dataset_name: str, results: dict) -> dict:
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
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("labels %s; training class counts %s", labels, dict(zip(labels, counts)))
    logger.info("trainable parameters: %s of %s", f"{trainable:,}", f"{total:,}")
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
    if data_args.test_split:
        prediction = trainer.predict(data[data_args.test_split])
        results[data_args.test_split] = scores(
            prediction.predictions,
            prediction.label_ids,
            labels,
            dims,
            bootstrap=data_args.bootstrap,
            seed=training_args.seed,
        )
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
        card=card_settings(model, model_args, training_args, dataset_name, results),
        training_args=training_args,
        push_to_hub=push_to_hub,
    )
    logger.info("test macro-F1 %.4f; saved to %s", (test or {}).get("macro_f1", float("nan")), out)


if __name__ == "__main__":
    sys.exit(main())
