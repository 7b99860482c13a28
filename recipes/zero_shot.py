"""Zero-shot emotion recognition (ABHINAYA T1): an instruction-tuned LLM classifies transcripts, or an
audio-LLM classifies audio, with no training, by scoring each label as the answer.

    python -m serhub.recipes.zero_shot                                      # SmolLM2-135M-Instruct on the embedded corpus's transcripts
    python -m serhub.recipes.zero_shot --model outputs/emosllm              # an audio-LLM on the audio
    python -m serhub.recipes.zero_shot --config recipes/configs/zero_shot/paper_abhinaya_t1_llama70b_msp.yaml

The labels are scored by their log-likelihood as the assistant's first words (the audio-LLM family's
scoring), so the probabilities are over the labels only and sum to 1 (no parsing, no "other" answer).
A text LLM is saved as a text classifier (``pipeline("text-classification")``, usable as an ensemble
member); eval_results.json holds ser_metrics with a bootstrap interval for every split scored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import datasets
import torch
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics
from serhub.modeling import TextLLMForSequenceClassification
from serhub.modeling.modeling_text_llm import INSTRUCTION
from serhub.modeling.offline_assets import resolve_pretrained
from serhub.recipes.arguments import CONFIGS, DataArguments, RunArguments, start_run
from serhub.recipes.data import (
    encode_labels,
    load_dataset_dict,
    refuse_augment,
    refuse_heldout,
    require_splits,
    resolve_labels,
)
from serhub.recipes.logs import get_logger, run_main
from serhub.recipes.reporting import push, write_eval_results, write_model_card
from serhub.recipes.run_folders import claim_output_dir, run_settings
from transformers import TrainingArguments

DEFAULT_CONFIG = CONFIGS / "zero_shot" / "default.yaml"
logger = get_logger("zero_shot")


@dataclass
class ZeroShotArguments:
    model: str = field(
        default="offline:smollm2-135m-instruct",
        metadata={"help": "an instruction-tuned LLM (transcripts) or a serhub audio-LLM folder (audio)"},
    )
    transcript_column: str = field(default="transcript")
    instruction: str = field(default=INSTRUCTION, metadata={"help": "the question; {labels} is replaced"})
    max_text_tokens: int = 128
    splits: list[str] = field(default_factory=lambda: ["test"], metadata={"help": "the splits to score"})


def is_audio_llm(model: str) -> bool:
    from serhub.modeling.remote_code import read_model_config

    return read_model_config(model).get("model_type") == "ser_audio_llm"  # config.json only, no code


@torch.no_grad()
def classify_transcripts(classifier, tokenizer, texts: list[str], batch_size: int) -> torch.Tensor:
    from tqdm.auto import tqdm

    rows = []
    for start in tqdm(range(0, len(texts), batch_size), desc="scoring transcripts", unit="batch"):
        batch = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True)
        rows.append(classifier(**batch.to(classifier.device)).logits.float().softmax(-1).cpu())
    return torch.cat(rows)


@torch.no_grad()
def classify_audio(folder: str, dataset, batch_size: int) -> tuple[torch.Tensor, list[str]]:
    from serhub.modeling.remote_code import check_model, trust_remote_code_for
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    trust = trust_remote_code_for(check_model(folder))  # serhub's installed classes, never the folder's code
    model = AutoModelForAudioClassification.from_pretrained(folder, trust_remote_code=trust).eval()
    fe = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=trust)
    audio = dataset.cast_column("audio", datasets.Audio(sampling_rate=16000))
    from tqdm.auto import tqdm

    rows = []
    for start in tqdm(range(0, len(audio), batch_size), desc="scoring audio", unit="batch"):
        clips = [a["array"] for a in audio[start : start + batch_size]["audio"]]
        inputs = fe(clips, sampling_rate=16000, return_tensors="pt", padding=True)
        rows.append(model(**inputs).logits.float().softmax(-1))
    return torch.cat(rows), [model.config.id2label[i] for i in range(len(model.config.id2label))]


# what main() parses (and every config in recipes/configs/zero_shot/ must parse with)
ARGUMENTS = (ZeroShotArguments, DataArguments, RunArguments, TrainingArguments)


def score_audio_llm(where: str, raw, labels: list[str], args, data_args, training_args) -> dict:
    """Each split's metrics from a trained audio-LLM's label scores, read in the dataset's label order."""
    results = {}
    for split in args.splits:
        data = encode_labels(raw[split], data_args.label_column, labels)
        probabilities, model_labels = classify_audio(where, data, training_args.per_device_eval_batch_size)
        missing = [label for label in labels if label not in model_labels]
        if missing:
            raise ValueError(
                f"{args.model} does not know the labels {missing} (it has {model_labels}); "
                "choose the labels to score with --labels"
            )
        order = [model_labels.index(label) for label in labels]  # the dataset's label order
        predicted = probabilities[:, order].argmax(-1).tolist()
        results[split] = classification_metrics(
            [labels[i] for i in predicted], [labels[i] for i in data["labels"]], labels=labels,
            bootstrap=data_args.bootstrap, seed=training_args.seed,
        )  # fmt: skip
    return results


def load_text_classifier(where: str, labels: list[str], args, training_args):
    """The LLM as a zero-shot transcript classifier (its label scores), with a pad token for batching."""
    model_kwargs = {"dtype": torch.bfloat16} if training_args.bf16 else {}
    if torch.cuda.is_available() and not training_args.use_cpu:
        model_kwargs["device_map"] = "auto"  # a 70B model spreads over the GPUs
    classifier, tokenizer = TextLLMForSequenceClassification.from_llm(
        where, labels, instruction=args.instruction, max_text_tokens=args.max_text_tokens,
        model_kwargs=model_kwargs,
    )  # fmt: skip
    classifier.config.text_model_name_or_path = args.model
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return classifier, tokenizer


def score_text_llm(where: str, raw, labels: list[str], args, data_args, training_args) -> dict:
    """Each split's metrics from the LLM reading its transcripts; the classifier (a new model: the LLM
    and its instruction) is saved with its card."""
    out, batch = training_args.output_dir, training_args.per_device_eval_batch_size
    classifier, tokenizer = load_text_classifier(where, labels, args, training_args)
    results = {}
    for split in args.splits:
        if args.transcript_column not in raw[split].column_names:
            raise ValueError(
                f"split {split!r} has no {args.transcript_column!r} column; zero-shot text "
                "classification needs transcripts (python -m serhub.datasets_scripts.transcribe)"
            )
        data = encode_labels(raw[split], data_args.label_column, labels)
        texts = [t or "" for t in data[args.transcript_column]]
        predicted = classify_transcripts(classifier, tokenizer, texts, batch).argmax(-1).tolist()
        results[split] = classification_metrics(
            [labels[i] for i in predicted], [labels[i] for i in data["labels"]], labels=labels,
            bootstrap=data_args.bootstrap, seed=training_args.seed,
        )  # fmt: skip
    classifier.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_model_card(
        out,
        template="text_llm.md",
        model_name="serhub-zero-shot",
        labels=labels,
        dataset_name=data_args.dataset_name_or_path or "synthetic_emotions",
        results=results,
        base_model=args.model,
        tags=["zero-shot", "text_llm"],
        task_type="text-classification",
        training_config={
            "LLM": args.model,
            "method": "zero-shot (no training)",
            "instruction": args.instruction,
        },
        model_id=training_args.hub_model_id,
    )
    return results


def main(argv=None):
    args, data_args, run_args, training_args, push_to_hub = start_run(ARGUMENTS, DEFAULT_CONFIG, argv)
    refuse_augment(data_args, "zero_shot", "does not train")
    refuse_heldout(data_args, "zero_shot", "classifies transcripts")
    out = training_args.output_dir
    raw = load_dataset_dict(data_args.dataset_name_or_path, data_args)
    labels = resolve_labels(raw, data_args)
    require_splits(raw, args.splits)
    settings = run_settings(training_args, labels, {s: raw[s] for s in args.splits}, args, data_args)
    run_lock = claim_output_dir(out, "zero_shot", settings, run_args.overwrite_output_dir)  # noqa: F841
    where = resolve_pretrained(args.model)
    audio = is_audio_llm(where)
    if audio and push_to_hub:
        raise ValueError(
            f"--push_to_hub: scoring the audio-LLM {args.model} saves no new model, so there is nothing to push; "
            "drop --push_to_hub (the model's own folder is what to upload)"
        )
    start = time.time()
    score = score_audio_llm if audio else score_text_llm
    results = score(where, raw, labels, args, data_args, training_args)
    summary = {"model": args.model, "input": "audio" if audio else "transcript", "labels": labels}
    write_eval_results(out, {**results, **summary, "runtime_s": round(time.time() - start, 1)})
    scores = ", ".join(f"{split} {r['macro_f1']:.4f}" for split, r in results.items())
    logger.info("zero-shot macro-F1 %s (%s); written to %s", scores, summary["input"], out)
    if push_to_hub:
        push(out, training_args.hub_model_id, training_args.hub_private_repo)
    return results


if __name__ == "__main__":
    run_main(main)
