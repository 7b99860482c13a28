"""Emotion from transcripts with an LLM: THAU-UPM's text model (SFT, label as the answer) and
ABHINAYA T2 (LoRA + attentive pooling head, vector-scaling loss).

    accelerate launch recipes/text_llm.py                          # THAU text: SmolLM2-135M-Instruct + LoRA, SFT (TRL)
    accelerate launch recipes/text_llm.py --method pooling_head    # ABHINAYA T2 on the same data
    accelerate launch recipes/text_llm.py --config recipes/configs/text_llm/paper_thau_gemma2b_emospeech.yaml \\
        --dataset_name_or_path data/emospeech

``--method sft`` (THAU): TRL's ``SFTTrainer`` fine-tunes the LLM (LoRA) to answer the chat prompt
with the label; the loss is on the completion only (the label and the end-of-turn token). The
prompt is tokenised exactly as the classifier will see it. The labels are then scored by their
log-likelihood as the answer (the audio-LLM family's label scoring). ``--method pooling_head``
(ABHINAYA T2): the transformers ``Trainer`` trains LoRA and an attentive statistics pooling head over
the last hidden layer with the classification loss (vector scaling by default).

Either way the output folder holds a transformers text classifier: ``AutoModelForSequenceClassification``
/ ``pipeline("text-classification", trust_remote_code=True)``, the LoRA merged, its scores calibrated by
a temperature fitted on validation (``serhub/calibration.py``; ``calibration_temperature`` in
config.json); plus eval_results.json (validation and test macro-F1 / UA / WA with a bootstrap
interval, ECE / NLL before and after calibration), confusion_matrix.png, training_curves.png and
README.md.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from serhub.datasets_scripts.common import class_counts
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics
from serhub.modeling import TextLLMConfig, TextLLMForSequenceClassification
from serhub.modeling.offline_assets import resolve_pretrained
from serhub.recipes.arguments import CONFIGS, DataArguments, RunArguments, config_kwargs, start_run
from serhub.recipes.data import (
    encode_labels,
    load_dataset_dict,
    refuse_augment,
    refuse_heldout,
    require_splits,
    resolve_labels,
)
from serhub.recipes.logs import get_logger
from serhub.recipes.optim import LoraLearningRateMixin
from serhub.recipes.reporting import EpochTimer, calibration_line, finish_run, scalar_metrics
from serhub.recipes.run_folders import claim_output_dir, last_complete_checkpoint, run_settings
from trl import SFTConfig

from serhub.calibration import calibrate

DEFAULT_CONFIG = CONFIGS / "text_llm" / "default.yaml"
METHODS = ("sft", "pooling_head")
logger = get_logger("text_llm")


@dataclass
class TextLLMArguments:
    text_model_name_or_path: str = field(
        default="offline:smollm2-135m-instruct", metadata={"help": "a causal LLM with a chat template"}
    )
    method: str = field(
        default="sft", metadata={"help": "sft (THAU: label as the answer) | pooling_head (ABHINAYA T2)"}
    )
    transcript_column: str = field(default="transcript")
    max_text_tokens: int = 64
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    # (not "loss_type": TRL's SFTConfig has one, for the LM loss)
    classification_loss: str = field(
        default="vector_scaling",
        metadata={"help": "pooling_head's loss: ce | weighted_ce | focal | vector_scaling"},
    )
    pooling_attention_size: int = 128
    lora_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "pooling_head: the LoRA adapters' learning rate (the new head keeps --learning_rate)"
        },
    )


def tokenize_split(dataset, tokenizer, args: TextLLMArguments, prompt: dict, labels: list[str], sft: bool):
    """Transcripts as token ids (what the classifier's tokenizer gives); for SFT, the whole chat row
    as the classifier builds it plus the answer, with ``completion_mask`` on the answer only."""
    strip = set(prompt.get("strip_ids", []))

    def encode(batch):
        texts = [t or "" for t in batch[args.transcript_column]]
        ids = tokenizer(texts, truncation=True, max_length=args.max_text_tokens + 4)["input_ids"]
        if not sft:
            return {"input_ids": ids, "labels": batch["labels"]}
        rows, masks = [], []
        for text_ids, label in zip(ids, batch["labels"]):
            text = [t for t in text_ids if t not in strip][: args.max_text_tokens]
            prompt_ids = prompt["prefix_ids"] + text + prompt["suffix_ids"]
            answer = prompt["label_token_ids"][label] + prompt["end_ids"]
            rows.append(prompt_ids + answer)
            masks.append([0] * len(prompt_ids) + [1] * len(answer))
        return {"input_ids": rows, "completion_mask": masks}

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, desc="tokenizing")


@torch.no_grad()
def split_logits(classifier, tokenizer, dataset, column: str, batch_size: int) -> np.ndarray:
    """The logits as trained (``calibrated=False``) of a split's transcripts, (clips, labels)."""
    classifier.eval()
    rows = []
    texts = [t or "" for t in dataset[column]]
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True)
        batch = {k: v.to(classifier.device) for k, v in batch.items()}
        rows.append(classifier(**batch, calibrated=False).logits.float().cpu().numpy())
    return np.concatenate(rows)


def split_metrics(logits: np.ndarray, dataset, labels, bootstrap=0, seed=0) -> dict:
    """serhub's ser_metrics of a split's argmax (with a bootstrap interval if asked)."""
    return classification_metrics(
        [labels[i] for i in logits.argmax(-1)],
        [labels[i] for i in dataset["labels"]],
        labels=labels,
        bootstrap=bootstrap,
        seed=seed,
    )


def build_classifier(args: TextLLMArguments, labels: list[str], counts: list[int]):
    mode = "label_logits" if args.method == "sft" else "pooling_head"
    model, tokenizer = TextLLMForSequenceClassification.from_llm(
        resolve_pretrained(args.text_model_name_or_path),
        labels,
        classification_mode=mode,
        class_counts=counts,
        loss_type=args.classification_loss,
        **config_kwargs(args, TextLLMConfig, exclude=("text_model_name_or_path",)),
    )
    model.config.text_model_name_or_path = args.text_model_name_or_path
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.enable_lora()
    model.train()
    return model, tokenizer


def run_training(trainer, out: str):
    """Train (resuming from the folder's last complete checkpoint) and keep the epochs' timings."""
    last = last_complete_checkpoint(out) if Path(out).is_dir() else None
    trainer.train(resume_from_checkpoint=last)
    timer = next(c for c in trainer.callback_handler.callbacks if isinstance(c, EpochTimer))
    trainer.epoch_seconds = timer.epoch_seconds
    return trainer


def train_sft(model, tokenizer, splits, training_args, args, labels, out):
    """THAU: supervised fine-tuning of the LLM (LoRA) with TRL, the loss on the answer only."""
    from trl import SFTTrainer

    prompt = model.config.prompt
    train = tokenize_split(splits["train"], tokenizer, args, prompt, labels, sft=True)
    valid = tokenize_split(splits["eval"], tokenizer, args, prompt, labels, sft=True)
    sft_args = dataclasses.replace(training_args, completion_only_loss=True, max_length=None, packing=False)
    trainer = SFTTrainer(
        model=model.language_model,
        args=sft_args,
        train_dataset=train,
        eval_dataset=valid,
        processing_class=tokenizer,
        callbacks=[EpochTimer()],
    )
    return run_training(trainer, out)


def train_pooling_head(model, tokenizer, splits, training_args, args, labels, out):
    """ABHINAYA T2: LoRA + the pooling head, trained on the classification loss."""
    from transformers import DataCollatorWithPadding, Trainer

    train = tokenize_split(splits["train"], tokenizer, args, model.config.prompt, labels, sft=False)
    valid = tokenize_split(splits["eval"], tokenizer, args, model.config.prompt, labels, sft=False)

    def compute_metrics(eval_pred):
        logits = (
            eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        )
        return scalar_metrics(
            classification_metrics(
                [labels[i] for i in np.asarray(logits).argmax(-1)],
                [labels[i] for i in eval_pred.label_ids],
                labels=labels,
            )
        )

    class PoolingHeadTrainer(LoraLearningRateMixin, Trainer):
        pass

    trainer = PoolingHeadTrainer(
        model=model,
        args=dataclasses.replace(training_args, label_names=["labels"]),
        train_dataset=train,
        eval_dataset=valid,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        callbacks=[EpochTimer()],
    )
    trainer.lora_learning_rate = args.lora_learning_rate
    return run_training(trainer, out)


# what main() parses (and every config in recipes/configs/text_llm/ must parse with)
ARGUMENTS = (TextLLMArguments, DataArguments, RunArguments, SFTConfig)


def encode_splits(raw, model_args: TextLLMArguments, data_args, labels: list[str]) -> dict:
    """The train / eval / test splits with integer labels and without their audio (a text model reads
    the transcripts only); a split without transcripts is refused before any model is loaded."""
    names = [s for s in (data_args.train_split, data_args.eval_split, data_args.test_split) if s]
    require_splits(raw, names)
    for name in names:
        if model_args.transcript_column not in raw[name].column_names:
            raise ValueError(
                f"split {name!r} has no {model_args.transcript_column!r} column (columns: {raw[name].column_names}); "
                "a text model needs transcripts: add them (python -m serhub.datasets_scripts.transcribe) "
                "or set --transcript_column"
            )
    return {
        key: encode_labels(raw[name].remove_columns(["audio"]) if "audio" in raw[name].column_names else raw[name],
                           data_args.label_column, labels)
        for key, name in (("train", data_args.train_split), ("eval", data_args.eval_split), ("test", data_args.test_split))
        if name
    }  # fmt: skip


def evaluate_splits(
    model, tokenizer, splits: dict, model_args, data_args, training_args, labels
) -> tuple[dict, dict]:
    """Each held-out split's ser_metrics (bootstrap intervals on test), then the temperature fitted on
    validation: (results, calibration)."""
    batch = training_args.per_device_eval_batch_size
    column = model_args.transcript_column
    logits = {
        key: split_logits(model, tokenizer, ds, column, batch) for key, ds in splits.items() if key != "train"
    }
    results = {data_args.eval_split: split_metrics(logits["eval"], splits["eval"], labels)}
    if "test" in splits:
        results[data_args.test_split] = split_metrics(
            logits["test"], splits["test"], labels, data_args.bootstrap, training_args.seed
        )

    # ------------------------------------------------------------------ calibrate (temperature on validation)
    held_out = {data_args.test_split: (logits["test"], splits["test"]["labels"])} if "test" in splits else {}
    calibration = calibrate(
        model, logits["eval"], splits["eval"]["labels"], held_out, fitted_on=data_args.eval_split
    )
    logger.info(calibration_line(calibration))
    return results, calibration


def card_settings(model_args, data_args, training_args, results: dict, calibration: dict) -> dict:
    """The model card's arguments (see ``reporting.write_model_card``)."""
    return {
        "template": "text_llm.md",
        "model_name": f"serhub-text-llm-{model_args.method}",
        "dataset_name": data_args.dataset_name_or_path or "synthetic_emotions",
        "results": results,
        "base_model": model_args.text_model_name_or_path,
        "tags": ["text_llm", model_args.method],
        "task_type": "text-classification",
        "calibration": calibration,
        "training_config": {
            "LLM": model_args.text_model_name_or_path,
            "method": model_args.method,
            "LoRA r / alpha": f"{model_args.lora_r} / {model_args.lora_alpha}",
            "loss": "LM loss on the answer (SFT)"
            if model_args.method == "sft"
            else model_args.classification_loss,
            "learning rate": training_args.learning_rate,
            "epochs": training_args.num_train_epochs,
        },
    }


def main(argv=None):
    model_args, data_args, run_args, training_args, push_to_hub = start_run(ARGUMENTS, DEFAULT_CONFIG, argv)
    refuse_augment(data_args, "text_llm", "trains on transcripts, not audio")
    refuse_heldout(data_args, "text_llm", "classifies transcripts")
    if model_args.method not in METHODS:
        raise ValueError(f"--method must be one of {METHODS}, got {model_args.method!r}")
    out = training_args.output_dir
    with training_args.main_process_first(desc="dataset"):
        raw = load_dataset_dict(data_args.dataset_name_or_path, data_args)
    labels = resolve_labels(raw, data_args)
    settings = run_settings(training_args, labels, dict(raw), model_args, data_args, exclude=("bootstrap",))
    run_lock = claim_output_dir(  # noqa: F841 (held until the process exits)
        out, "text_llm", settings, run_args.overwrite_output_dir, training_args.process_index == 0
    )
    splits = encode_splits(raw, model_args, data_args, labels)
    counts = class_counts(splits["train"], "labels", len(labels))
    model, tokenizer = build_classifier(model_args, labels, counts)
    logger.info("%s; %s", model_args.method, trainable_summary(model))
    start = time.time()
    train = train_sft if model_args.method == "sft" else train_pooling_head
    trainer = train(model, tokenizer, splits, training_args, model_args, labels, out)
    seconds = time.time() - start
    model.merge_and_unload_lora()
    results, calibration = evaluate_splits(
        model, tokenizer, splits, model_args, data_args, training_args, labels
    )
    summary = {
        "method": model_args.method,
        "labels": labels,
        "train_runtime_s": round(seconds, 1),
        "epoch_seconds": [round(t, 2) for t in trainer.epoch_seconds],
        "world_size": training_args.world_size,
        "calibration": calibration,
    }
    if not trainer.is_world_process_zero():
        return
    finish_run(
        out,
        save=(model, tokenizer),
        results=results,
        summary=summary,
        labels=labels,
        confusion=(
            results.get(data_args.test_split) or results[data_args.eval_split],
            f"text LLM ({model_args.method})",
        ),
        history=trainer.state.log_history,
        curves_title=f"text_llm ({model_args.method})",
        card=card_settings(model_args, data_args, training_args, results, calibration),
        training_args=training_args,
        push_to_hub=push_to_hub,
    )
    scores = ", ".join(f"{split} {r['macro_f1']:.4f}" for split, r in results.items())
    logger.info("macro-F1 %s; saved to %s", scores, out)


def trainable_summary(model) -> str:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f} %)"


if __name__ == "__main__":
    from serhub.recipes.logs import run_main

    run_main(main, sys.argv[1:])
