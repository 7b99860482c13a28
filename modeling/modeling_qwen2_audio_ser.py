"""Qwen2-Audio as a speech-emotion classifier (THAU-UPM's task 2): transformers' own
``Qwen2AudioForConditionalGeneration``, fine-tuned (LoRA) to answer a chat prompt with the emotion,
saved so that ``pipeline("audio-classification")`` runs it.

- ``Qwen2AudioSERConfig``: ``Qwen2AudioConfig`` plus the label set and the tokenised chat prompt
  (``prompt``: ``prefix_ids`` before the audio tokens, ``suffix_ids`` after them up to the assistant
  turn, ``label_token_ids``), so that classifying needs no tokenizer.
- ``Qwen2AudioSERForConditionalGeneration``: the stock model under that config (LM loss, ``generate``).
- ``Qwen2AudioForAudioClassification``: the same weights; ``forward(input_features, attention_mask)``
  (what the pipeline's feature extractor gives) returns each label's log-likelihood as the answer,
  the audio-LLM family's label scoring (``layers.score_labels``).
- ``parse_label``: THAU's post-processing of a written answer (the first label it names, else a fallback).
"""

from __future__ import annotations

import re

import torch
from torch import nn
from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import CausalLMOutputWithPast, SequenceClassifierOutput

from .layers import score_labels
from .prompting_audio_llm import left_pad
from .remote_code import add_auto_map_entries

INSTRUCTION = "What emotion does the speaker express? Answer with one word from: {labels}."


def _share_qwen2_audio_checkpoint_format() -> None:
    """Load and save the Qwen2-Audio checkpoint layout ("language_model.lm_head", "audio_tower", ...)
    as transformers does for ``qwen2_audio``: its key renaming is registered by model type, so without
    this a Qwen2-Audio checkpoint would load into this config's model with a missing (random) LM head."""
    from transformers.conversion_mapping import (
        get_checkpoint_conversion_mapping,
        register_checkpoint_conversion_mapping,
    )

    mapping = get_checkpoint_conversion_mapping("qwen2_audio")
    if mapping is not None and get_checkpoint_conversion_mapping("ser_qwen2_audio") is None:
        register_checkpoint_conversion_mapping("ser_qwen2_audio", mapping)


_share_qwen2_audio_checkpoint_format()


class Qwen2AudioSERConfig(Qwen2AudioConfig):
    r"""``Qwen2AudioConfig`` plus:
    labels: the emotion label set (names, in class-id order).
    prompt: ``prefix_ids`` / ``suffix_ids`` (the chat around the audio tokens, up to where the
        assistant answers), ``label_token_ids`` (each label as the answer), ``end_ids``.
    fallback_label: what a written answer naming no label counts as (THAU: "neutral").
    """

    model_type = "ser_qwen2_audio"

    def __init__(self, labels=None, prompt=None, fallback_label: str | None = None, **kwargs):
        self.labels = list(labels or [])
        self.prompt = dict(prompt or {})
        self.fallback_label = fallback_label
        if self.labels and "id2label" not in kwargs:
            kwargs["id2label"] = dict(enumerate(self.labels))
            kwargs["label2id"] = {label: i for i, label in enumerate(self.labels)}
        super().__init__(**kwargs)


def chat_text(processor, labels: list[str], instruction: str = INSTRUCTION) -> str:
    """The chat prompt as text, one audio clip, up to where the assistant answers (the processor's
    chat template): what training appends the answer to, and what the config's prompt tokenises."""
    conversation = [
        {
            "role": "user",
            "content": [
                {"type": "audio", "audio_url": "clip.wav"},
                {"type": "text", "text": instruction.format(labels=", ".join(labels))},
            ],
        }
    ]
    return processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)


def chat_prompt(processor, labels: list[str], instruction: str = INSTRUCTION) -> dict:
    """The config's ``prompt`` from a Qwen2-Audio processor (its chat template, one audio clip)."""
    text = chat_text(processor, labels, instruction)
    if processor.audio_token not in text:
        raise ValueError(
            f"the processor's chat template put no {processor.audio_token} in the prompt: {text!r}"
        )
    before, after = text.split(processor.audio_token, 1)
    tokenizer = processor.tokenizer
    encode = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    ids = [encode(label) for label in labels]
    if len({tuple(i) for i in ids}) != len(ids):
        raise ValueError(f"two labels tokenise identically: {dict(zip(labels, ids))}; rename one")
    end = "<|im_end|>" if "<|im_end|>" in tokenizer.get_vocab() else tokenizer.eos_token
    return {
        "prefix_ids": encode(before),
        "suffix_ids": encode(after),
        "label_token_ids": ids,
        "end_ids": encode(end),
        "audio_token_id": tokenizer.convert_tokens_to_ids(processor.audio_token),
    }


def parse_label(answer: str, labels: list[str], fallback: str) -> tuple[str, bool]:
    """THAU's post-processing: the label named first in ``answer`` (whole words, any case), or
    ``fallback`` when it names none. Returns ``(label, fell_back)``."""
    text = (answer or "").lower()
    found = []
    for label in labels:
        match = re.search(rf"\b{re.escape(label.lower())}\b", text)
        if match:
            found.append((match.start(), label))
    return (min(found)[1], False) if found else (fallback, True)


class _LanguageModelHead(nn.Module):
    """The LLM and its head as the causal LM that ``score_labels`` drives (embeddings or ids in,
    logits and cache out)."""

    def __init__(self, model: Qwen2AudioForConditionalGeneration):
        super().__init__()
        self.body, self.head = model.model.language_model, model.lm_head

    def forward(self, input_ids=None, inputs_embeds=None, logits_to_keep: int = 0, **kwargs):
        out = self.body(input_ids=input_ids, inputs_embeds=inputs_embeds, **kwargs)
        hidden = out.last_hidden_state[:, -logits_to_keep:] if logits_to_keep else out.last_hidden_state
        return CausalLMOutputWithPast(logits=self.head(hidden), past_key_values=out.past_key_values)


class Qwen2AudioSERForConditionalGeneration(Qwen2AudioForConditionalGeneration):
    config_class = Qwen2AudioSERConfig

    def save_pretrained(self, save_directory, *args, **kwargs):
        super().save_pretrained(save_directory, *args, **kwargs)
        if self._auto_class is not None:  # both heads load from either checkpoint (same weights)
            add_auto_map_entries(
                save_directory,
                {
                    "AutoModel": "modeling_qwen2_audio_ser.Qwen2AudioSERForConditionalGeneration",
                    "AutoModelForAudioClassification": "modeling_qwen2_audio_ser.Qwen2AudioForAudioClassification",
                },
            )

    def audio_token_counts(self, feature_attention_mask: torch.Tensor) -> list[int]:
        """Audio tokens each clip becomes (the processor's expansion), from its mel-frame mask."""
        return self.model.audio_tower._get_feat_extract_output_lengths(feature_attention_mask.sum(-1))[
            1
        ].tolist()

    def merged_embeddings(self, input_ids, input_features, feature_attention_mask) -> torch.Tensor:
        """Token embeddings with each clip's audio features in its audio-token positions."""
        tower = self.model.audio_tower
        conv_lengths, token_lengths = tower._get_feat_extract_output_lengths(feature_attention_mask.sum(-1))
        frames = (input_features.shape[-1] - 2) // 2 + 1
        valid = torch.arange(frames, device=input_features.device)[None] < conv_lengths[:, None]
        dtype = tower.conv1.weight.dtype
        mask = create_bidirectional_mask(
            config=tower.config,
            inputs_embeds=torch.zeros(valid.shape[0], frames, 1, dtype=dtype, device=valid.device),
            attention_mask=valid.long(),
        )
        features = self.model.multi_modal_projector(
            tower(input_features.to(dtype), attention_mask=mask).last_hidden_state
        )
        keep = torch.arange(features.shape[1], device=features.device)[None] < token_lengths[:, None]
        embeds = self.get_input_embeddings()(input_ids)
        slots = input_ids == self.config.audio_token_id
        if int(slots.sum()) != int(keep.sum()):
            raise ValueError(
                f"the prompt has {int(slots.sum())} audio tokens but the audio gives {int(keep.sum())}; build the "
                "inputs with the model's processor (or from the config's prompt, as the pipeline does)"
            )
        return embeds.masked_scatter(slots[..., None], features[keep].to(embeds.dtype))

    def label_scores(self, input_ids, attention_mask, input_features, feature_attention_mask) -> torch.Tensor:
        """log p(label | prompt) of every label (B, C) after a left-padded prompt that ends where the
        answer starts (multi-token labels: their full likelihood)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        embeds = self.merged_embeddings(
            input_ids, input_features, feature_attention_mask.to(input_ids.device)
        )
        positions = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        return score_labels(
            _LanguageModelHead(self), embeds, attention_mask, positions, self.config.prompt["label_token_ids"]
        )


class Qwen2AudioForAudioClassification(Qwen2AudioSERForConditionalGeneration):
    main_input_name = "input_features"

    def prompt_ids(self, feature_attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The config's chat prompt with each clip's audio tokens, left-padded."""
        p = self.config.prompt
        if not p.get("prefix_ids"):
            raise ValueError(
                "this config has no prompt; build it with recipes/qwen2_audio_lora.py (chat_prompt)"
            )
        rows = [
            list(p["prefix_ids"]) + [self.config.audio_token_id] * n + list(p["suffix_ids"])
            for n in self.audio_token_counts(feature_attention_mask)
        ]
        ids, mask = left_pad(rows, self.config.text_config.pad_token_id or 0)
        device = feature_attention_mask.device
        return torch.as_tensor(ids, device=device), torch.as_tensor(mask, device=device)

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        feature_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        r"""Each label's log-likelihood as the answer (B, num_labels).

        Without ``input_ids`` (the pipeline): ``attention_mask`` is the features' mask (all frames when
        absent) and the prompt comes from the config. With ``input_ids`` (a left-padded prompt from
        the processor, ending where the answer starts): ``attention_mask`` is the tokens' mask.
        """
        if input_features is None:
            raise ValueError("pass input_features (the Whisper feature extractor's log-mel frames)")
        if input_ids is None:
            if feature_attention_mask is None:
                feature_attention_mask = (
                    attention_mask
                    if attention_mask is not None
                    else torch.ones(input_features.shape[0], input_features.shape[-1], dtype=torch.long)
                )
            frames = input_features.shape[-1]
            if feature_attention_mask.shape[-1] != frames:  # a per-sample mask (the extractor's own call
                # with return_attention_mask from its config): one entry per hop, as Whisper's frames
                step = feature_attention_mask.shape[-1] // frames
                feature_attention_mask = feature_attention_mask[:, ::step][:, :frames]
            input_ids, attention_mask = self.prompt_ids(feature_attention_mask.to(input_features.device))
        elif feature_attention_mask is None:
            raise ValueError("with input_ids, pass feature_attention_mask too (the processor returns it)")
        logits = self.label_scores(input_ids, attention_mask, input_features, feature_attention_mask)
        loss = nn.functional.cross_entropy(logits.float(), labels.long()) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


__all__ = [
    "INSTRUCTION",
    "Qwen2AudioForAudioClassification",
    "Qwen2AudioSERConfig",
    "Qwen2AudioSERForConditionalGeneration",
    "chat_prompt",
    "chat_text",
    "parse_label",
]
