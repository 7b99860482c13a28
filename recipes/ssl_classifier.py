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
from serhub.metrics.plotting import plot_confusion_matrix, plot_training_curves
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
from serhub.recipes.reporting import EpochTimer, push, scalar_metrics, write_json, write_model_card
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


def main(argv=None):
    model_args, data_args, run_args, training_args, push_to_hub = start_run(
        (ModelArguments, DataArguments, RunArguments, TrainingArguments), DEFAULT_CONFIG, argv
    )

    # ------------------------------------------------------------------ data
    with training_args.main_process_first(desc="dataset"):
        raw = load_dataset_dict(data_args.dataset_name_or_path)
    dataset_name = data_args.dataset_name_or_path or "synthetic_emotions"
    splits = [s for s in (data_args.train_split, data_args.eval_split, data_args.test_split) if s]
    require_splits(raw, splits)

    # ------------------------------------------------------------------ model
    if model_args.model_name_or_path:
        model = SpeechEmotionForAudioClassification.from_pretrained(
            resolve_pretrained(model_args.model_name_or_path)
        )
        feature_extractor = SpeechEmotionFeatureExtractor.from_pretrained(
            resolve_pretrained(model_args.model_name_or_path)
        )
        labels = resolve_labels(raw, data_args, known=model.config.id2label)
    else:
        labels = resolve_labels(raw, data_args)
        model = None
    limits = {
        data_args.train_split: data_args.max_train_samples,
        data_args.eval_split: data_args.max_eval_samples,
    }
    data = {}
    for split in splits:
        ds = raw[split]
        if limits.get(split):
            ds = ds.shuffle(seed=training_args.seed).select(range(min(limits[split], len(ds))))
        data[split] = encode_labels(
            ds.cast_column("audio", datasets.Audio(sampling_rate=16000)), data_args.label_column, labels
        )
    run_lock = claim_output_dir(  # noqa: F841 (held until the process exits)
        training_args.output_dir,
        "ssl_classifier",
        run_settings(training_args, labels, dict(raw), model_args, data_args, exclude=("bootstrap",)),
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
    logger.info("labels %s; training class counts %s", labels, dict(zip(labels, counts)))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info(
        "trainable parameters: %s of %s", f"{trainable:,}", f"{sum(p.numel() for p in model.parameters()):,}"
    )

    dims = tuple(model.config.dimensions)
    keep = ("labels", *dims)
    cached = model.config.freeze_encoder and data_args.cache_encoder_outputs
    if cached:
        cache_dir = f"{training_args.output_dir}/encoder_cache"
        weights = model_args.model_name_or_path or model_args.encoder_name_or_path
        encoder = (weights, model.config.audio_config.to_dict(), "all layers")
        encode_start = time.time()
        with training_args.main_process_first(desc="encoder cache"):
            for split, ds in data.items():
                data[split] = cache_encoder_outputs(
                    model.encode,
                    feature_extractor,
                    ds,
                    cache_dir,
                    split,
                    training_args.per_device_eval_batch_size,
                    keep,
                    encoder,
                )
        encode_seconds = time.time() - encode_start
        logger.info("encoder outputs cached in %.1f s; training never runs the encoder again", encode_seconds)
        collator = CachedEncoderCollator(dims)
    else:
        encode_seconds = 0.0
        collator = AudioCollator(feature_extractor, dims)
        # the collator reads the raw "audio" column, which is not a forward argument: the Trainer
        # would drop it otherwise
        training_args.remove_unused_columns = False

    # ------------------------------------------------------------------ train
    # What the Trainer collects as references at evaluation (its default would be every forward
    # argument named *label*, and it skips metrics when one of them is absent).
    training_args.label_names = ["labels", "dimensional_labels"] if dims else ["labels"]

    def compute_metrics(eval_pred):
        logits = (
            eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        )
        refs = eval_pred.label_ids[0] if isinstance(eval_pred.label_ids, tuple) else eval_pred.label_ids
        out = scalar_metrics(
            classification_metrics(
                [labels[i] for i in logits.argmax(-1)], [labels[i] for i in refs], labels=labels
            )
        )
        if dims and isinstance(eval_pred.predictions, tuple):
            out.update(dimensional_metrics(eval_pred.predictions[1], eval_pred.label_ids[1], dims))
        return out

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=data[data_args.train_split],
        eval_dataset=data[data_args.eval_split],
        data_collator=collator,
        processing_class=feature_extractor,
        compute_metrics=compute_metrics,
        callbacks=[timer := EpochTimer()],
    )
    last = (
        last_complete_checkpoint(training_args.output_dir)
        if os.path.isdir(training_args.output_dir)
        else None
    )
    if last:
        logger.info("resuming from %s", last)
    start = time.time()
    train_result = trainer.train(resume_from_checkpoint=last)
    train_seconds = time.time() - start

    # ------------------------------------------------------------------ evaluate
    results = {data_args.eval_split: trainer.evaluate()}
    if data_args.test_split:
        prediction = trainer.predict(data[data_args.test_split])
        logits = (
            prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        )
        refs = prediction.label_ids[0] if isinstance(prediction.label_ids, tuple) else prediction.label_ids
        test = classification_metrics(
            [labels[i] for i in logits.argmax(-1)],
            [labels[i] for i in refs],
            labels=labels,
            bootstrap=data_args.bootstrap,
            seed=training_args.seed,
        )
        if dims and isinstance(prediction.predictions, tuple):
            test.update(dimensional_metrics(prediction.predictions[1], prediction.label_ids[1], dims))
        results[data_args.test_split] = test

    # ------------------------------------------------------------------ save, card, push
    if trainer.is_world_process_zero():
        out = training_args.output_dir
        trainer.save_model(out)
        feature_extractor.save_pretrained(out)
        summary = {
            "train_runtime_s": round(train_seconds, 1),
            "encoder_cache_s": round(encode_seconds, 1),
            "epoch_seconds": [round(t, 2) for t in timer.epoch_seconds],
            "train_loss": train_result.training_loss,
            "labels": labels,
            "class_counts": counts,
            "world_size": training_args.world_size,
        }
        write_json(f"{out}/eval_results.json", {**results, **summary})
        if data_args.test_split:
            test = results[data_args.test_split]
            plot_confusion_matrix(
                test["confusion_matrix"],
                labels,
                f"{out}/confusion_matrix.png",
                title=f"{dataset_name} {data_args.test_split}",
            )
        plot_training_curves(trainer.state.log_history, f"{out}/training_curves.png", title="ssl_classifier")
        card_results = {
            split: {k.removeprefix("eval_"): v for k, v in r.items()} for split, r in results.items()
        }
        write_model_card(
            out,
            template="speech_emotion.md",
            model_name=(training_args.hub_model_id or "serhub-ssl-classifier").split("/")[-1],
            labels=labels,
            dataset_name=dataset_name,
            results=card_results,
            base_model=model_args.encoder_name_or_path,
            tags=["ssl_classifier"],
            training_config={
                "encoder": model_args.encoder_name_or_path,
                "loss_type": model.config.loss_type,
                "freeze_encoder": model.config.freeze_encoder,
                "learning_rate": training_args.learning_rate,
                "epochs": training_args.num_train_epochs,
                "batch_size": training_args.per_device_train_batch_size,
                "seed": training_args.seed,
            },
        )
        test_f1 = results.get(data_args.test_split, {}).get("macro_f1", float("nan"))
        logger.info("test macro-F1 %.4f; saved to %s", test_f1, out)
        if push_to_hub:
            push(out, training_args.hub_model_id, training_args.hub_private_repo)


if __name__ == "__main__":
    sys.exit(main())
