"""serhub's audio-LLM heads, on the trunk of ``trunk_audio_llm`` (speech encoder (frozen) -> connector ->
causal LLM (LoRA or frozen)).

The heads subclass the trunk, so they share its module tree and state-dict keys: a checkpoint trained
generatively loads as a classifier, and the reverse.
- ``AudioLLMForConditionalGeneration``: LM loss, ``generate()`` ("| ASR: <t> | Emotion: <label>").
- ``AudioLLMForAudioClassification``: label probabilities from the LLM ("label_logits",
  "transcript_conditioned") or an attentive-pooling head over its last hidden states ("pooling_head").
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import GenerationMixin
from transformers.modeling_outputs import CausalLMOutputWithPast, SequenceClassifierOutput

from .configuration_audio_llm import AudioLLMConfig
from .layers import AttentiveStatisticsPooling
from .readouts_audio_llm import append_written_answer, prompt_from_config
from .trunk_audio_llm import AudioLLMModel, AudioLLMPreTrainedModel


class AudioLLMForConditionalGeneration(AudioLLMModel, GenerationMixin):
    def __init__(self, config: AudioLLMConfig):
        super().__init__(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        class_labels: torch.Tensor | None = None,
        ctc_words: torch.Tensor | None = None,
        prosody_values: torch.Tensor | None = None,
        prosody_reference: torch.Tensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""class_labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
        Class ids for prompts that end where the emotion label is written (the SER-only prompt, no
        answer). The model then scores every label's tokens there (as the ``label_logits``
        classifier does) and returns those scores as ``logits`` (B, num_labels) and the
        cross-entropy over the labels alone as ``loss``, instead of the LM loss over the whole
        vocabulary. (Recipes weight classes and add the variational connector's KL term in their
        objective, ``recipes/objectives.py``.)
        ctc_words (`torch.LongTensor` of shape `(batch_size, words)`, *optional*):
        For the ``ctc_path`` connector in training: token ids (-1 padded) that replace a row's CTC
        words in its words slots (copy training); a row of -1 keeps the CTC head's own.
        prosody_values, prosody_reference (`torch.FloatTensor` of shape `(batch_size, 10)`, *optional*):
        For a ``config.speaker_prosody`` model scoring labels (``class_labels``): each clip's measured
        prosody numbers and its speaker's reference (see ``AudioLLMForAudioClassification``); otherwise
        unused.
        """
        audio = input_values if input_values is not None else input_features
        if class_labels is not None and (labels is not None or past_key_values is not None):
            raise ValueError(
                "class_labels scores a prompt's labels: pass it without labels or past_key_values"
            )
        if inputs_embeds is None:
            self.check_context(attention_mask.shape[1] if attention_mask is not None else input_ids.shape[1])
            inputs_embeds, attention_mask, default_positions = self.build_inputs(
                input_ids,
                attention_mask,
                audio,
                audio_attention_mask,
                encoder_hidden_states,
                encoder_attention_mask,
                ctc_words,
            )
            position_ids = default_positions if position_ids is None else position_ids
        if class_labels is not None:
            scores = self.label_scores(
                inputs_embeds, attention_mask, position_ids, self.config.prompt["label_token_ids"]
            )
            has_audio = audio is not None or encoder_hidden_states is not None
            scores = self.with_prosody_scores(scores, prosody_values, prosody_reference, has_audio)
            loss = nn.functional.cross_entropy(scores.float(), class_labels.to(scores.device).long())
            return CausalLMOutputWithPast(loss=loss, logits=scores)
        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )

    @torch.no_grad()
    def explain(
        self, processor, audio, sampling_rate: int = 16000, max_new_tokens: int | None = None
    ) -> list[dict]:
        """The model's written answer for each clip, parsed: ``{"transcript", "descriptors", "label"}``
        ("| ASR: <t> | Descriptors: <d> | Emotion: <label>" for a descriptor model, whose
        descriptors are the explanation; a joint EmoSLLM answer has ``descriptors`` None).
        ``audio``: 16 kHz clips (arrays); ``processor``: this model's ``AudioLLMProcessor``."""
        from .prompting_audio_llm import ASR_PREFIX, parse_answer

        task = "asr+des+ser" if "descriptors_prefix_ids" in self.config.prompt else "asr+ser"
        clips = list(audio) if isinstance(audio, (list, tuple)) else [audio]
        inputs = processor(
            audio=clips,
            task=task,
            prompt_index=0,
            shuffle_labels=False,
            answer_prefix=ASR_PREFIX,
            sampling_rate=sampling_rate,
        ).to(self.device)
        out = self.generate(
            **inputs, max_new_tokens=max_new_tokens or self.config.max_answer_tokens, do_sample=False
        )
        texts = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return [parse_answer(f"{ASR_PREFIX} {t}") for t in texts]

    def as_classifier(self, classification_mode: str = "label_logits") -> AudioLLMForAudioClassification:
        """A classifier that shares this model's modules (no copy): evaluate a generatively trained
        model with label scores. (A "pooling_head" needs its own trained head: load a checkpoint.)"""
        if classification_mode == "pooling_head":
            raise ValueError(
                "a pooling_head classifier needs a trained head; use AudioLLMForAudioClassification.from_pretrained"
            )
        config = copy.deepcopy(self.config)
        config.classification_mode = classification_mode
        with torch.device("meta"):
            classifier = AudioLLMForAudioClassification(config)
        classifier.audio_encoder, classifier.connector, classifier.language_model = (
            self.audio_encoder,
            self.connector,
            self.language_model,
        )
        classifier.prosody, classifier._prosody_reference = self.prosody, self._prosody_reference
        return classifier.eval() if not self.training else classifier

    def generate(self, input_ids=None, attention_mask=None, **kwargs):
        """``GenerationMixin.generate``; for a connector that masks unused audio slots
        (``Connector.masks_slots``), the prompt's mask gets those slots masked first, so every step
        (not only the one that reads the audio) ignores them. The encoder then runs once, here."""
        audio = kwargs.get("input_values", kwargs.get("input_features"))
        if (
            self.connector.masks_slots
            and input_ids is not None
            and (audio is not None or kwargs.get("encoder_hidden_states") is not None)
        ):
            if kwargs.get("encoder_hidden_states") is None:
                for key in ("input_values", "input_features"):
                    kwargs.pop(key, None)
                states, mask = self.encode(audio, kwargs.pop("audio_attention_mask", None))
                kwargs["encoder_hidden_states"], kwargs["encoder_attention_mask"] = states, mask
            _, token_mask, attend = self.connect(
                encoder_hidden_states=kwargs["encoder_hidden_states"],
                encoder_attention_mask=kwargs.get("encoder_attention_mask"),
            )
            attention_mask = self.mask_unused_slots(input_ids, attention_mask, attend[token_mask])
        return super().generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def prepare_inputs_for_generation(
        self,
        input_ids,
        next_sequence_length=None,
        past_key_values=None,
        attention_mask=None,
        is_first_iteration=False,
        **kwargs,
    ):
        audio_keys = (
            "input_values",
            "input_features",
            "audio_attention_mask",
            "encoder_hidden_states",
            "encoder_attention_mask",
        )
        audio = {k: kwargs.pop(k) for k in audio_keys if k in kwargs}
        model_inputs = super().prepare_inputs_for_generation(
            input_ids,
            next_sequence_length=next_sequence_length,
            past_key_values=past_key_values,
            attention_mask=attention_mask,
            is_first_iteration=is_first_iteration,
            **kwargs,
        )
        current = model_inputs.get("input_ids")
        if current is not None and bool((current == self.config.audio_token_id).any()):
            # the audio goes with the step whose input holds its placeholders: the first one with a
            # KV cache (later steps read it from the cache), every step without one
            model_inputs.update(audio)
        return model_inputs


class AudioLLMForAudioClassification(AudioLLMModel):
    def __init__(self, config: AudioLLMConfig):
        super().__init__(config)
        if config.classification_mode == "pooling_head":
            hidden = config.text_config.hidden_size
            self.pooling = AttentiveStatisticsPooling(hidden, config.pooling_attention_size)
            self.classifier = nn.Linear(2 * hidden, len(config.labels))
        self.post_init()

    def _prompt_from_config(
        self, prompt_ids, audio, audio_attention_mask, encoder_hidden_states, encoder_attention_mask
    ):
        return prompt_from_config(
            self.config, prompt_ids, audio, audio_attention_mask, encoder_hidden_states,
            encoder_attention_mask, self.device,
        )  # fmt: skip

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        calibrated: bool = True,
        prosody_values: torch.Tensor | None = None,
        prosody_reference: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        r"""Class logits (log-likelihoods of the labels, or head logits) for each clip / text, divided by
        ``config.calibration_temperature`` (fitted on validation by the recipes) unless
        ``calibrated=False``; the loss is always on the logits as trained.

        With ``input_ids`` (from ``AudioLLMProcessor``; ``audio_attention_mask`` is the audio's mask).
        Without (as in ``pipeline("audio-classification")``), ``attention_mask`` is the audio's mask
        and the prompt comes from the config.

        A ``config.speaker_prosody`` model also needs ``prosody_values`` (B, 10) with audio (its feature
        extractor measures them): the prosody's label scores, relative to ``prosody_reference`` (B, 10),
        else the enrolled speaker's (``enroll_speaker``), else the training voices' average, are added
        to the LLM's in every mode.
        """
        audio = input_values if input_values is not None else input_features
        mode = self.config.classification_mode
        if input_ids is None:
            if self.config.prompt.get("reads_transcript"):
                raise ValueError(
                    "this model reads the transcript with the audio (ABHINAYA ST1): build its inputs with "
                    "AudioLLMProcessor(audio=[clip], text=[transcript], task='ser'), or put it in an "
                    "EnsembleForAudioClassification, whose members get transcripts from its ASR pass"
                )
            if audio is None and encoder_hidden_states is None:
                raise ValueError(
                    "pass audio (input_values / input_features), encoder_hidden_states, or input_ids"
                )
            audio_attention_mask = attention_mask if audio_attention_mask is None else audio_attention_mask
            prompt = self.config.prompt.get(
                {
                    "transcript_conditioned": "joint_input_ids",
                    "descriptor_conditioned": "described_input_ids",
                }.get(mode, "input_ids")
            )
            input_ids, attention_mask = self._prompt_from_config(
                prompt, audio, audio_attention_mask, encoder_hidden_states, encoder_attention_mask
            )
        self.check_context(input_ids.shape[1])
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        embeds, attention_mask, positions = self.build_inputs(
            input_ids,
            attention_mask,
            audio,
            audio_attention_mask,
            encoder_hidden_states,
            encoder_attention_mask,
        )
        if mode == "pooling_head":
            out = self.language_model.model(
                inputs_embeds=embeds, attention_mask=attention_mask, position_ids=positions
            )
            logits = self.classifier(self.pooling(out.last_hidden_state, attention_mask.bool()))
        else:
            label_ids = self.config.prompt["label_token_ids"]
            if mode in ("transcript_conditioned", "descriptor_conditioned"):
                embeds, attention_mask, positions = self._append_transcript(
                    embeds, attention_mask, with_descriptors=mode == "descriptor_conditioned"
                )
                label_ids = self.config.prompt["emotion_label_token_ids"]
            logits = self.label_scores(embeds, attention_mask, positions, label_ids)
        has_audio = audio is not None or encoder_hidden_states is not None
        logits = self.with_prosody_scores(logits, prosody_values, prosody_reference, has_audio)
        # plain cross-entropy (recipes weight classes in their objective, recipes/objectives.py)
        loss = (
            nn.functional.cross_entropy(logits.float(), labels.to(logits.device).long())
            if labels is not None
            else None
        )
        if calibrated and self.config.calibration_temperature != 1.0:
            logits = logits / self.config.calibration_temperature
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def _append_transcript(self, embeds, attention_mask, with_descriptors: bool = False):
        return append_written_answer(self, embeds, attention_mask, with_descriptors)


__all__ = [
    "AudioLLMForAudioClassification",
    "AudioLLMForConditionalGeneration",
    "AudioLLMModel",
    "AudioLLMPreTrainedModel",
]
