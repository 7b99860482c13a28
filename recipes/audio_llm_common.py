"""What the audio-LLM recipes (emosllm, whisper_llm) share: arguments (written in ``audio_llm_arguments``), building the model, the
cached-encoder collator, the Trainer with the audio-LLM objective (``objectives``), and evaluation (SER in label_logits / transcript_conditioned modes, WER; written in ``audio_llm_evaluation``, importable from here)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from serhub.modeling import AudioLLMConfig, AudioLLMForConditionalGeneration, AudioLLMProcessor
from serhub.modeling.offline_assets import resolve_pretrained
from transformers import Trainer

from .arguments import config_kwargs
from .audio_llm_arguments import AudioLLMArguments
from .audio_llm_evaluation import (  # noqa: F401 (batches too: the recipes import the evaluation from here)
    audio_token_check,
    batches,
    evaluate_ser,
    evaluate_text_only,
    evaluate_wer,
)
from .data import LengthGroupedSampler, cache_encoder_outputs, frame_counts, pad_cached_states, with_trimming
from .logs import get_logger
from .objectives import AudioLLMObjective, labels_sharing_first_token
from .optim import LoraLearningRateMixin

logger = get_logger("audio_llm")


def model_config_kwargs(args: AudioLLMArguments) -> dict:
    """AudioLLMConfig settings from the recipe arguments: every argument that names a config field
    (the two backbones are passed to ``from_pretrained_components`` as the parts themselves)."""
    kwargs = config_kwargs(
        args, AudioLLMConfig, exclude=("audio_model_name_or_path", "text_model_name_or_path")
    )
    if not args.mapper_output_norm:  # otherwise from_pretrained_components ties the gain to the LLM's RMS
        kwargs["mapper_output_scale"] = None
    return kwargs


def build_model(
    args: AudioLLMArguments, labels: list[str]
) -> tuple[AudioLLMForConditionalGeneration, AudioLLMProcessor]:
    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        resolve_pretrained(args.audio_model_name_or_path),
        resolve_pretrained(args.text_model_name_or_path),
        labels,
        system_prompt=args.system_prompt,
        **model_config_kwargs(args),
    )
    processor.feature_extractor = with_trimming(
        processor.feature_extractor, args.trim_silence_db, args.trim_noise_margin_db
    )
    if args.init_connector:
        from .connector_init import init_connector

        init_connector(model, args.init_connector)
    return model, processor


def cache_split(model, processor, dataset, cache_dir: str, name: str, batch_size: int, keep):
    """Last-layer encoder outputs of ``dataset`` (every layer for the "vae_ib" connector, whose
    branches weigh them); computed once, later runs and epochs reuse them."""
    what = "every layer" if model.connector.every_layer else "last layer"
    encoder = (model.config.audio_model_name_or_path, model.config.audio_config.to_dict(), what)
    return cache_encoder_outputs(
        model.encode, processor.feature_extractor, dataset, cache_dir, name, batch_size, keep, encoder
    )


def cache_training_split(
    model, processor, dataset, cache_dir: str, name: str, batch_size: int, keep, data_args, seed: int
):
    """``cache_split`` of a training split followed by its ``--augment_copies`` augmented copies, each
    encoded once (``recipes/data.augmented_copies``); the clean split alone without ``--augment``."""
    from .data import augmented_copies

    cached = cache_split(model, processor, dataset, cache_dir, name, batch_size, keep)
    copies = augmented_copies(dataset, data_args, seed, batch_size)
    if not copies:
        return cached
    encoded = [
        cache_split(model, processor, c, cache_dir, f"{name}-augment{k}", batch_size, keep)
        for k, c in enumerate(copies)
    ]
    cached = datasets.concatenate_datasets([cached, *encoded])
    logger.info("%s: the clean clips and %d augmented copies (%d clips)", name, len(copies), len(cached))
    return cached


SER_ONLY_OBJECTIVES = ("lm", "label_ce")
JOINT_TASKS = ("asr+ser", "asr+des+ser")  # answers with a transcript and an emotion
# the prompt each classification mode starts from (the others: the SER prompt)
MODE_TASKS = {"transcript_conditioned": "asr+ser", "descriptor_conditioned": "asr+des+ser"}


@dataclass
class CachedAudioLLMCollator:
    """Cached encoder outputs + prompts (and answers) for one task: "asr", "ser" or "asr+ser".

    Prompts come from the processor's bank with the emotion list shuffled per sample, unless
    ``fixed_prompt`` (evaluation, and THAU's single-prompt training).
    """

    processor: AudioLLMProcessor
    task: str
    labels: list[str] | None = None  # label names by class id
    with_answers: bool = True
    class_targets: bool = False  # put class ids in "labels" (classification training)
    fixed_prompt: bool = False
    # text the assistant turn starts with: one for all rows, or a function of the row (e.g. the
    # ground-truth "| ASR: <t> | Descriptors: <d> | Emotion:" to score the labels after)
    answer_prefix: str | Callable[[dict], str] | None = None
    # ABHINAYA ST1: the clip's transcript goes into the prompt beside the audio (rows need "transcript")
    transcript_in_prompt: bool = False
    seed: int = 0
    # "asr+ser" only: share of batches that ask for the emotion alone (EmoSLLM's SER-only prompt),
    # so that the direct label_logits readout is trained as well as the joint answer
    ser_only_fraction: float = 0.0
    # what SER-only batches train: "lm" (the label word as an answer, LM loss over the vocabulary) or
    # "label_ce" (prompt only + ``class_labels``: the model's loss over the labels' scores alone)
    ser_only_objective: str = "lm"
    # joint answers: also mark where each row's emotion label sits in its answer
    # ("joint_label_positions", "joint_class_labels"), for the trainer's label-restricted loss there
    joint_label_targets: bool = False
    # "ctc_path" connector, answers with a transcript: share of rows whose words slots hold the
    # reference transcript's tokens instead of the CTC head's words ("ctc_words"), so that LoRA
    # learns to copy what it reads there (the rest read the head's own, imperfect words)
    copy_fraction: float = 0.0

    def __post_init__(self):
        if self.ser_only_objective not in SER_ONLY_OBJECTIVES:
            raise ValueError(
                f"ser_only_objective={self.ser_only_objective!r}; expected one of {SER_ONLY_OBJECTIVES}"
            )
        if self.joint_label_targets:
            self._label_ids = self.processor.label_token_ids(
                after_prefix=True
            )  # as written after "| Emotion:"
            shared = labels_sharing_first_token(self.processor.labels, self._label_ids)
            if shared:
                raise ValueError(
                    f"joint_label_targets scores the labels by their first token after '| Emotion:', but {shared} "
                    "share one; rename those labels or turn the joint label losses off (--joint_label_weight 0 "
                    "--direct_label_weight 0)."
                )

    def _batch_rng(self, rows) -> random.Random:
        """The batch's own random source: a function of the seed and the batch's content, so a
        resumed run draws the same prompts for the same batches as an uninterrupted one (a stateful
        generator would restart from its seed at the checkpoint)."""
        digest = hashlib.sha256(str(self.seed).encode())
        for r in rows:
            digest.update(repr((r.get("transcript"), int(r["labels"]) if "labels" in r else None)).encode())
            digest.update(np.asarray(r["encoder_hidden_states"]).tobytes()[:256])
        return random.Random(int.from_bytes(digest.digest()[:8], "little"))

    def __call__(self, rows):
        rng = self._batch_rng(rows)
        hidden, mask = pad_cached_states(rows)
        if hidden.dim() == 4:  # every layer, cached time first (B, T, L, D) -> the encoder's (B, L, T, D)
            hidden = hidden.transpose(1, 2)
        counts = [self.processor.audio_token_counts(int(n)) for n in mask.sum(-1)]
        names = [self.labels[int(r["labels"])] for r in rows] if self.labels and "labels" in rows[0] else None
        task = self.task
        if task in JOINT_TASKS and self.ser_only_fraction > 0 and rng.random() < self.ser_only_fraction:
            task = "ser"
        class_labels = self.with_answers and task == "ser" and self.ser_only_objective == "label_ce"
        answers = {}
        if self.with_answers and not self.class_targets and not class_labels:
            if task != "asr":
                answers["labels"] = names
            if task != "ser":
                answers["transcripts"] = [r["transcript"] for r in rows]
            if task == "asr+des+ser":
                answers["descriptors"] = [r["descriptors"] for r in rows]
        batch = self.processor(
            audio_token_counts=counts,
            text=[r["transcript"] or "" for r in rows] if self.transcript_in_prompt else None,
            task=task,
            prompt_index=0 if self.fixed_prompt else None,
            shuffle_labels=not self.fixed_prompt,
            seed=rng.randrange(2**31),
            answer_prefix=[self.answer_prefix(r) for r in rows]
            if callable(self.answer_prefix)
            else self.answer_prefix,
            return_asr_mask=bool(answers),
            **answers,
        )
        batch["encoder_hidden_states"], batch["encoder_attention_mask"] = hidden, mask
        for key in ("prosody_values", "prosody_reference"):  # --speaker_prosody (recipes/speaker_prosody.py)
            if key in rows[0]:
                batch[key] = torch.as_tensor(np.stack([np.asarray(r[key], dtype=np.float32) for r in rows]))
        if self.copy_fraction > 0 and "transcripts" in answers:
            batch["ctc_words"] = self._copy_rows(rows, counts, rng)
        if self.class_targets:
            batch["labels"] = torch.tensor([int(r["labels"]) for r in rows])
        elif class_labels:
            batch["class_labels"] = torch.tensor([int(r["labels"]) for r in rows])
        elif self.joint_label_targets and task in JOINT_TASKS and "labels" in answers:
            batch["joint_class_labels"] = torch.tensor([int(r["labels"]) for r in rows])
            batch["joint_label_positions"] = self._label_positions(
                batch["labels"], batch["joint_class_labels"]
            )
        return batch

    def _copy_rows(self, rows, counts, rng) -> torch.Tensor:
        """(B, W) token ids for the words slots, -1 padded: the reference transcript's tokens for a
        ``copy_fraction`` of the rows (those whose transcript fits their slots), all -1 for the others."""
        tokenizer = self.processor.tokenizer
        words = [
            tokenizer(r["transcript"], add_special_tokens=False)["input_ids"]
            if rng.random() < self.copy_fraction
            else []
            for r in rows
        ]
        words = [w if len(w) <= count[0] else [] for w, count in zip(words, counts)]
        out = torch.full((len(rows), max(1, max(len(w) for w in words))), -1, dtype=torch.long)
        for i, w in enumerate(words):
            out[i, : len(w)] = torch.tensor(w, dtype=torch.long)
        return out

    def _label_positions(self, targets: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Where each row's emotion label starts in its joint answer: the last place its tokens
        (as written after "| Emotion:") occur among the row's answer tokens."""
        positions = []
        for row, c in zip(targets.tolist(), classes.tolist()):
            ids, found = self._label_ids[c], -1
            for i in range(len(row) - len(ids), -1, -1):
                if row[i : i + len(ids)] == ids:
                    found = i
                    break
            if found < 1:
                raise ValueError(f"no emotion label {ids} in the joint answer {row}")
            positions.append(found)
        return torch.tensor(positions)


class AudioLLMTrainer(LoraLearningRateMixin, Trainer):
    """The stock Trainer with the audio-LLM objective (:class:`~.objectives.AudioLLMObjective`;
    its weights' schedules are callbacks, :class:`~.objectives.WeightSchedule`) and ``extra_eval``
    task metrics (macro-F1, WER) in each evaluation. Checkpoints hold only what trains when the
    model's config says ``backbone_weights="referenced"`` (the stock ``save_pretrained`` / resume path)."""

    def __init__(
        self,
        *args,
        objective: AudioLLMObjective | None = None,
        extra_eval=None,
        lora_learning_rate: float | None = None,
        prosody_learning_rate: float | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.objective = objective if objective is not None else AudioLLMObjective()
        self.extra_eval = extra_eval
        self.lora_learning_rate = lora_learning_rate  # LoraLearningRateMixin (None: --learning_rate)
        self.prosody_learning_rate = prosody_learning_rate

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return self.objective(model, inputs, return_outputs)

    def _get_train_sampler(self, train_dataset=None):
        """``--train_sampling_strategy group_by_length``: batches of clips of similar length from the
        encoder cache's frame counts, in an order a resumed run repeats (``data.LengthGroupedSampler``)."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or "encoder_hidden_states" not in getattr(
            dataset, "column_names", ()
        ):
            return super()._get_train_sampler(train_dataset)
        return LengthGroupedSampler(
            frame_counts(dataset),
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            seed=self.args.seed,
        )

    def _get_eval_sampler(self, eval_dataset):
        """Evaluation keeps the cache's order (the stock sampler would group it by an input_ids length)."""
        if self.args.train_sampling_strategy == "group_by_length" and "encoder_hidden_states" in getattr(
            eval_dataset, "column_names", ()
        ):
            return torch.utils.data.SequentialSampler(eval_dataset)
        return super()._get_eval_sampler(eval_dataset)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        if self.extra_eval is not None and self.is_world_process_zero():
            was_training = self.model.training
            self.model.eval()
            extra = {f"{metric_key_prefix}_{k}": v for k, v in self.extra_eval(self.model).items()}
            self.model.train(was_training)
            self.log(extra)
            metrics.update(extra)
        return metrics


__all__ = [
    "AudioLLMArguments",
    "AudioLLMTrainer",
    "SER_ONLY_OBJECTIVES",
    "CachedAudioLLMCollator",
    "audio_token_check",
    "build_model",
    "model_config_kwargs",
    "cache_split",
    "cache_training_split",
    "evaluate_ser",
    "evaluate_text_only",
    "evaluate_wer",
]
