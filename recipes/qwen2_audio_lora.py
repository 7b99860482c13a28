"""THAU-UPM task 2: transformers' ``Qwen2AudioForConditionalGeneration`` fine-tuned with LoRA (peft) on
chat-formatted SER with TRL's ``SFTTrainer`` (the loss on the answer only), then classified two ways:
by writing the answer and parsing it (THAU's post-processing: the first label named, "neutral" when
none is; the fallback rate is reported) and by label-constrained scoring (each label's
log-likelihood as the answer). The saved model (LoRA merged) runs in ``pipeline("audio-classification")``.

    accelerate launch recipes/qwen2_audio_lora.py --model_name_or_path Qwen/Qwen2-Audio-7B-Instruct \\
        --dataset_name_or_path data/emospeech
    accelerate launch --config_file recipes/accelerate_configs/ddp.yaml recipes/qwen2_audio_lora.py \\
        --config recipes/configs/qwen2_audio_lora/paper_qwen2audio_7b_emospeech.yaml

No Qwen2-Audio weights exist offline, so there is no CPU default: ``--model_name_or_path`` names a Hub
id or a folder (the tests train a tiny random one end to end).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from serhub.datasets_scripts.common import class_counts
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics
from serhub.modeling.modeling_qwen2_audio_ser import (
    INSTRUCTION,
    Qwen2AudioSERConfig,
    Qwen2AudioSERForConditionalGeneration,
    chat_prompt,
    chat_text,
    parse_label,
)
from serhub.recipes.arguments import CONFIGS, DataArguments, RunArguments, start_run
from serhub.recipes.data import (
    embedded_dataset_path,
    encode_labels,
    load_dataset_dict,
    refuse_augment,
    resolve_labels,
)
from serhub.recipes.logs import get_logger, run_main
from serhub.recipes.reporting import EpochTimer, finish_run
from serhub.recipes.run_folders import claim_output_dir, last_complete_checkpoint, run_settings
from trl import SFTConfig

DEFAULT_CONFIG = CONFIGS / "qwen2_audio_lora" / "default.yaml"
logger = get_logger("qwen2_audio_lora")
SAMPLING_RATE = 16000


@dataclass
class Qwen2AudioArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "a Qwen2-Audio model: Hub id (Qwen/Qwen2-Audio-7B-Instruct) or folder"},
    )
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: str = field(
        default=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)",
        metadata={"help": "regex over module names (the LLM's attention projections)"},
    )
    freeze_audio_tower: bool = field(default=True, metadata={"help": "train LoRA on the LLM only"})
    instruction: str = INSTRUCTION
    fallback_label: str = field(
        default="neutral", metadata={"help": "a written answer naming no label counts as"}
    )
    max_new_tokens: int = field(default=8, metadata={"help": "answer length when classifying by generation"})
    model_dtype: str = field(default="float32", metadata={"help": "float32 | bfloat16 | float16"})


def load_model(args: Qwen2AudioArguments, labels: list[str]):
    """Processor and model (the stock weights under a config that knows the labels and the prompt)."""
    from transformers import AutoProcessor

    if not args.model_name_or_path:
        raise ValueError(
            "pass --model_name_or_path: a Qwen2-Audio model (Hub id such as Qwen/Qwen2-Audio-7B-Instruct, or a "
            "folder). None is available offline; the GPU setup is "
            "--config recipes/configs/qwen2_audio_lora/paper_qwen2audio_7b_emospeech.yaml"
        )
    processor = AutoProcessor.from_pretrained(args.model_name_or_path)
    processor.tokenizer.padding_side = "left"  # the answer starts at the last position of every row
    # the saved feature extractor gives the pipeline each clip's frame mask (its audio-token count)
    processor.feature_extractor.return_attention_mask = True
    if args.fallback_label not in labels:
        raise ValueError(f"--fallback_label {args.fallback_label!r} is not one of the labels {labels}")
    from transformers import AutoConfig

    base = AutoConfig.from_pretrained(args.model_name_or_path).to_dict()  # stock (or an earlier SER run's)
    for key in ("model_type", "architectures", "auto_map", "transformers_version", "id2label", "label2id"):
        base.pop(key, None)
    for key in ("labels", "prompt", "fallback_label"):  # fine-tuning a fine-tuned one: its own are replaced
        base.pop(key, None)
    config = Qwen2AudioSERConfig(
        **base,
        labels=labels,
        prompt=chat_prompt(processor, labels, args.instruction),
        fallback_label=args.fallback_label,
    )
    model = Qwen2AudioSERForConditionalGeneration.from_pretrained(
        args.model_name_or_path, config=config, dtype=getattr(torch, args.model_dtype)
    )
    return processor, model


def add_lora(model, args: Qwen2AudioArguments):
    from peft import LoraConfig, get_peft_model

    if args.freeze_audio_tower:
        model.model.audio_tower.requires_grad_(False)
    lora = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=args.lora_target_modules,
    )
    return get_peft_model(model, lora)


@dataclass
class ChatCollator:
    """Rows (audio, class id) -> the chat prompt with the clip, plus the label as the answer for
    training (``labels`` -100 everywhere but the answer), left-padded."""

    processor: object
    labels: list[str]
    prompt_text: str
    with_answers: bool = True

    def __call__(self, rows):
        vocab = self.processor.tokenizer.get_vocab()
        end = "<|im_end|>" if "<|im_end|>" in vocab else self.processor.tokenizer.eos_token
        texts, answers = [], []
        for r in rows:
            answer = self.labels[int(r["labels"])] + end if self.with_answers else ""
            texts.append(self.prompt_text + answer)
            answers.append(answer)
        batch = self.processor(
            text=texts,
            audio=[np.asarray(r["audio"]["array"], dtype=np.float32) for r in rows],
            sampling_rate=SAMPLING_RATE,
            return_tensors="pt",
            padding=True,
        )
        if self.with_answers:
            tokenizer, labels = self.processor.tokenizer, torch.full_like(batch["input_ids"], -100)
            for i, answer in enumerate(answers):
                n = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
                labels[i, -n:] = batch["input_ids"][i, -n:]  # left padding: the answer ends every row
            batch["labels"] = labels
        return batch


@torch.no_grad()
def evaluate(model, processor, dataset, labels, args, batch_size: int, bootstrap: int = 0) -> dict:
    """Test metrics of both classifications: written answers parsed, and label scoring."""
    model.eval()
    collate = ChatCollator(
        processor, labels, chat_text(processor, labels, args.instruction), with_answers=False
    )
    written, scored, references, fallbacks, answers = [], [], [], 0, []
    for start in range(0, len(dataset), batch_size):
        rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        batch = {k: v.to(model.device) for k, v in collate(rows).items()}
        out = model.generate(**batch, max_new_tokens=args.max_new_tokens, do_sample=False)
        for text in processor.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True):
            label, fell_back = parse_label(text, labels, args.fallback_label)
            written.append(label)
            fallbacks += fell_back
            answers.append(text)
        scores = model.label_scores(
            batch["input_ids"],
            batch["attention_mask"],
            batch["input_features"],
            batch["feature_attention_mask"],
        )
        scored += [labels[i] for i in scores.argmax(-1).tolist()]
        references += [labels[int(r["labels"])] for r in rows]
    generation = classification_metrics(written, references, labels=labels, bootstrap=bootstrap)
    generation["fallback_rate"] = fallbacks / max(len(references), 1)
    generation["example_answers"] = answers[:5]
    return {
        "generation": generation,
        "label_scoring": classification_metrics(scored, references, labels=labels, bootstrap=bootstrap),
    }


# what main() parses (and every config in recipes/configs/qwen2_audio_lora/ must parse with)
ARGUMENTS = (Qwen2AudioArguments, DataArguments, RunArguments, SFTConfig)


def load_splits(data_args, training_args) -> tuple:
    """(the dataset, its labels, the splits in use with integer labels and audio at the processor's
    rate); --max_train_samples keeps the first rows of the training split."""
    with training_args.main_process_first(desc="datasets"):
        data = load_dataset_dict(data_args.dataset_name_or_path or str(embedded_dataset_path()), data_args)
    labels = resolve_labels(data, data_args)
    names = [s for s in (data_args.train_split, data_args.eval_split, data_args.test_split) if s]
    audio = datasets.Audio(sampling_rate=SAMPLING_RATE)
    splits = {
        n: encode_labels(data[n].cast_column("audio", audio), data_args.label_column, labels) for n in names
    }
    if data_args.max_train_samples:
        splits[data_args.train_split] = splits[data_args.train_split].select(
            range(min(data_args.max_train_samples, len(splits[data_args.train_split])))
        )
    return data, labels, splits


def build_trainer(peft_model, processor, splits: dict, labels: list[str], args, data_args, training_args):
    """TRL's SFTTrainer on the chats ChatCollator builds (so TRL's own dataset preparation is skipped)."""
    from trl import SFTTrainer

    sft_args = dataclasses.replace(
        training_args,
        dataset_kwargs={"skip_prepare_dataset": True},  # the collator builds chats and labels
        remove_unused_columns=False,
        max_length=None,
        packing=False,
    )
    text = chat_text(processor, labels, args.instruction)
    return SFTTrainer(
        model=peft_model,
        args=sft_args,
        train_dataset=splits[data_args.train_split],
        eval_dataset=splits.get(data_args.eval_split),
        data_collator=ChatCollator(processor, labels, text),
        processing_class=processor.tokenizer,
        callbacks=[EpochTimer()],
    )


def card_settings(args: Qwen2AudioArguments, data_args, training_args, results: dict) -> dict:
    """The model card's arguments (see ``reporting.write_model_card``)."""
    return {
        "template": "qwen2_audio.md",
        "model_name": "serhub-qwen2-audio-ser",
        "dataset_name": data_args.dataset_name_or_path or "synthetic_emotions",
        "results": {f"test ({k})": v for k, v in results.items()},
        "base_model": args.model_name_or_path,
        "tags": ["qwen2-audio", "audio-llm", "lora", "thau-upm"],
        "fallback_rate": results.get("generation", {}).get("fallback_rate"),
        "training_config": {
            "model": args.model_name_or_path,
            "LoRA": f"r={args.lora_r}, alpha={args.lora_alpha} on {args.lora_target_modules}",
            "audio tower": "frozen" if args.freeze_audio_tower else "trained",
            "learning rate": training_args.learning_rate,
            "epochs": training_args.num_train_epochs,
        },
    }


def main(argv=None):
    args, data_args, run_args, training_args, push_to_hub = start_run(ARGUMENTS, DEFAULT_CONFIG, argv)
    refuse_augment(data_args, "qwen2_audio_lora", "feeds the audio to TRL's SFTTrainer unaugmented")
    data, labels, splits = load_splits(data_args, training_args)
    settings = run_settings(training_args, labels, dict(data.items()), args, data_args)
    run_lock = claim_output_dir(  # noqa: F841 (held until the process exits)
        training_args.output_dir,
        "qwen2_audio_lora",
        settings,
        run_args.overwrite_output_dir,
        training_args.process_index == 0,
    )
    processor, model = load_model(args, labels)
    model.config.class_counts = class_counts(splits[data_args.train_split], "labels", len(labels))
    peft_model = add_lora(model, args)
    logger.info("trainable parameters: %s", peft_model.get_nb_trainable_parameters())
    trainer = build_trainer(peft_model, processor, splits, labels, args, data_args, training_args)
    out = training_args.output_dir
    last = last_complete_checkpoint(out) if Path(out).is_dir() else None
    if last:
        logger.info("resuming from %s", last)
    trainer.train(resume_from_checkpoint=last)
    if not training_args.should_save:
        return
    model = peft_model.merge_and_unload()
    results = {}
    if data_args.test_split:
        results = evaluate(
            model,
            processor,
            splits[data_args.test_split],
            labels,
            args,
            training_args.per_device_eval_batch_size,
            data_args.bootstrap,
        )
    best = max(results, key=lambda k: results[k]["macro_f1"]) if results else None
    finish_run(
        out,
        save=(model, processor),
        results=results,
        summary={"labels": labels, "world_size": training_args.world_size},
        labels=labels,
        confusion=(results[best], f"test ({best})") if best else None,
        history=trainer.state.log_history,
        curves_title="Qwen2-Audio LoRA",
        card=card_settings(args, data_args, training_args, results),
        training_args=training_args,
        push_to_hub=push_to_hub,
        data_args=data_args,
    )
    for name, r in results.items():
        logger.info("test %s: macro-F1 %.4f", name, r["macro_f1"])


if __name__ == "__main__":
    run_main(main)
