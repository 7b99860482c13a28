"""The audio-LLM trunk that serhub's two audio-LLM heads (``modeling_audio_llm``) are built on.

    audio -> encoder (frozen) -> (B, T, D) -> connector (``connectors.CONNECTORS``) -> (B, N, H) audio tokens
    prompt ids with N placeholders per clip -> embeddings; audio tokens masked_scatter'ed into the
    placeholders (the one merge path) -> LLM (LoRA or frozen)

- ``AudioLLMPreTrainedModel``: what every audio-LLM class shares with transformers: the config class,
  weight initialisation of serhub's own parts, and light checkpoints (``backbone_weights="referenced"``:
  the frozen encoder and LLM are left out of the saved file and filled from their references on load).
- ``AudioLLMModel``: the modules (``audio_encoder``, ``connector``, ``language_model``) and everything
  between audio and the LLM's inputs (encode, connect, merge, mask unused slots), label scoring, LoRA.
  Its ``forward`` returns the LLM's last hidden states. The heads subclass it rather than hold it, so
  their state-dict keys are the trunk's own (``connector.*``, ``language_model.*``) and every
  checkpoint loads in every head, and in the trunk, with no key conversion; ``base_model`` is the
  model itself.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast

from .assembly_audio_llm import (
    backbone_keys,
    build_from_components,
    freeze_all_but_lora,
    inject_lora,
    load_backbone_weights,
    merge_lora,
    refuse_old_light_checkpoint,
)
from .configuration_audio_llm import AudioLLMConfig, encoder_convs
from .connectors import CTCPathConnector, QueryPoolingMapper, VariationalBranch
from .ctc_path import CTC_INITIAL_SCALE
from .layers import ProsodyLabelScores, score_labels
from .prompting_audio_llm import encoder_output_frames
from .remote_code import add_auto_map_entries
from .speaker_reference import SpeakerReferenceMixin
from .speech_encoder import SpeechEncoder


class AudioLLMPreTrainedModel(PreTrainedModel):
    config_class = AudioLLMConfig
    # forward returns the mean loss of the batch it is given and ignores num_items_in_batch: the Trainer
    # must divide it by the gradient-accumulation steps (it skips that for models said to accept loss kwargs)
    accepts_loss_kwargs = False
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = [
        "LlamaDecoderLayer",
        "Qwen2DecoderLayer",
        "GemmaDecoderLayer",
        "WhisperEncoderLayer",
        "WavLMEncoderLayer",
    ]
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module):
        # serhub's own parts (connector, pooling head, classifier); the encoder and the LLM come
        # pretrained or initialise themselves
        if isinstance(module, nn.Linear):
            module.weight.normal_(0.0, 0.02)
            if getattr(module, "zero_init", False):  # layers.ProsodyLabelScores: starts adding nothing
                module.weight.zero_()
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
        elif isinstance(module, QueryPoolingMapper):
            module.queries.normal_(0.0, 0.02)
            if module.position_scale is not None:
                module.position_scale.fill_(0.1)
            if module.output_gain is not None:
                module.output_gain.fill_(self.config.mapper_output_scale)
        elif isinstance(module, CTCPathConnector):
            module.blank.normal_(0.0, 0.02)
            module.log_scale.fill_(math.log(CTC_INITIAL_SCALE))
        elif isinstance(module, VariationalBranch):
            latent = module.posterior.out_features // 2
            module.posterior.bias[latent:].fill_(self.config.vib_initial_log_var)  # (mu | log sigma^2)
            if module.output_gain is not None:
                module.output_gain.fill_(self.config.mapper_output_scale)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """As ``PreTrainedModel.from_pretrained``; a checkpoint saved with ``backbone_weights="referenced"``
        gets its frozen encoder and LLM from the places its config names (pass e.g.
        ``text_model_name_or_path="/new/folder"`` if they moved)."""
        refuse_old_light_checkpoint(Path(str(pretrained_model_name_or_path)))
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # output_loading_info=True
        if model.config.backbone_weights == "referenced":
            load_backbone_weights(model, pretrained_model_name_or_path)
        # loading assigns fresh parameters (requires_grad=True): the encoder is frozen, and a referenced
        # or LoRA-adapted language model trains its adapters only
        model.audio_encoder.freeze(True)
        model.connector.freeze_untrainable()
        if model.config.has_lora or model.config.backbone_weights == "referenced":
            freeze_all_but_lora(model.language_model)
        return loaded

    def tie_weights(self, missing_keys=None, recompute_mapping=True):
        # a light checkpoint leaves the frozen LLM out on purpose (its tied input and output embeddings
        # included) and from_pretrained fills it after loading; transformers ties weights before it
        # applies _keys_to_ignore_on_load_missing and would report both ends of the tie absent
        # ("checkpoint seem corrupted"): tie as for a new model instead
        if missing_keys is not None and self.config.backbone_weights == "referenced":
            missing_keys = None
        super().tie_weights(missing_keys=missing_keys, recompute_mapping=recompute_mapping)

    def save_trainable(self, save_directory: str | os.PathLike, **kwargs):
        """``save_pretrained`` with the backbones referenced, not saved (Ultravox-style): what trained,
        the config (naming the frozen backbones) and the code. ``from_pretrained`` rebuilds the rest."""
        saved, self.config.backbone_weights = self.config.backbone_weights, "referenced"
        try:
            self.save_pretrained(save_directory, **kwargs)
        finally:
            self.config.backbone_weights = saved

    def save_pretrained(self, save_directory, *args, state_dict=None, **kwargs):
        """``PreTrainedModel.save_pretrained``; with ``config.backbone_weights == "referenced"`` the frozen
        backbones are left out of what is written (a light checkpoint of the connector, LoRA adapters,
        heads and the connector's statistics), also from a ``state_dict`` the caller (the Trainer) passes."""
        if self.config.backbone_weights == "referenced":
            leave_out = backbone_keys(self)
            state_dict = {k: v for k, v in (state_dict or self.state_dict()).items() if k not in leave_out}
        super().save_pretrained(save_directory, *args, state_dict=state_dict, **kwargs)
        if self._auto_class is not None:
            self._add_auto_map(save_directory)

    @staticmethod
    def _add_auto_map(save_directory) -> None:
        # both heads load from either kind of checkpoint (same module tree and keys)
        generation = "modeling_audio_llm.AudioLLMForConditionalGeneration"
        add_auto_map_entries(
            save_directory,
            {
                "AutoModel": generation,
                "AutoModelForCausalLM": generation,
                "AutoModelForAudioClassification": "modeling_audio_llm.AudioLLMForAudioClassification",
            },
        )

    def train(self, mode: bool = True):
        super().train(mode)
        self.audio_encoder.eval()  # frozen: no dropout, outputs equal to the cached ones
        return self


class AudioLLMModel(SpeakerReferenceMixin, AudioLLMPreTrainedModel):
    """The speech encoder (frozen), the connector and the causal LLM, and the path from audio to the
    LLM's input embeddings. ``forward`` returns the LLM's last hidden states (the heads add the LM
    loss, generation, or label scores)."""

    def __init__(self, config: AudioLLMConfig):
        super().__init__(config)
        self.audio_encoder = SpeechEncoder(config.audio_config, config.chunk_length_s)
        self.audio_encoder.freeze(True)
        # one query-pooling window per encoder chunk (chunk_length_s): the encoder's own chunk, in frames
        max_frames = encoder_output_frames(self.audio_encoder.chunk, encoder_convs(config.audio_config))
        self.connector = config.connector_class.from_config(config, max_frames)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        # speaker_prosody: label scores from the clip's prosody relative to its speaker, added to the LLM's
        self.prosody = (
            ProsodyLabelScores(
                len(config.labels),
                config.prosody_hidden_size,
                reference_dropout=getattr(config, "prosody_reference_dropout", 0.0),
            )
            if getattr(config, "speaker_prosody", False)
            else None
        )
        if type(self) is AudioLLMModel:
            self.post_init()

    def post_init(self):
        """transformers' ``post_init`` (weight initialisation), then what must follow it, since that
        initialisation would overwrite LoRA's: the adapters the config records, the frozen encoder, and
        the backbone keys a light checkpoint leaves out."""
        super().post_init()
        if self.config.has_lora:
            inject_lora(self)
        self.audio_encoder.freeze(True)
        self.connector.freeze_untrainable()
        if self.config.backbone_weights == "referenced":
            self._keys_to_ignore_on_load_missing = {
                *(self._keys_to_ignore_on_load_missing or ()),
                r"^audio_encoder\.",
                r"^language_model\.(?!.*\.lora_)",
            }

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """The LLM's hidden states over the prompt with the audio tokens in its placeholders."""
        audio = input_values if input_values is not None else input_features
        self.check_context(input_ids.shape[1])
        embeds, attention_mask, positions = self.build_inputs(
            input_ids,
            attention_mask,
            audio,
            audio_attention_mask,
            encoder_hidden_states,
            encoder_attention_mask,
        )
        return self.language_model.model(
            inputs_embeds=embeds, attention_mask=attention_mask, position_ids=positions, **kwargs
        )

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    # ------------------------------------------------------------------ audio -> LLM tokens
    def audio_tokens(
        self,
        audio: torch.Tensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Connector outputs (B, N, H) and their validity mask (B, N). ``encoder_hidden_states``: the
        encoder's last layer (B, T, D), or for the "vae_ib" connector every layer (B, L, T, D)."""
        tokens, mask, _ = self.connect(
            audio, audio_attention_mask, encoder_hidden_states, encoder_attention_mask
        )
        return tokens, mask

    def encode(self, audio, audio_attention_mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen encoder's outputs as the connector reads them (its last layer, or every layer
        for connectors that read them all) and their mask."""
        with torch.no_grad():
            states, mask = self.audio_encoder(audio, audio_attention_mask)
        return (states if self.connector.every_layer else states[:, -1]), mask

    def connect(
        self,
        audio=None,
        audio_attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        ctc_words=None,
    ):
        """``(tokens, token_mask, attend)``: the connector's tokens, which of them fill placeholders, and
        which placeholders the LLM reads (None: all of them; see ``Connector.masks_slots``).
        ``ctc_words``: token ids for the words slots of a connector that writes LLM tokens (training)."""
        if encoder_hidden_states is None:
            encoder_hidden_states, encoder_attention_mask = self.encode(audio, audio_attention_mask)
        elif encoder_attention_mask is None:
            shape = (encoder_hidden_states.shape[0], encoder_hidden_states.shape[-2])
            encoder_attention_mask = torch.ones(shape, dtype=torch.bool, device=encoder_hidden_states.device)
        frames = encoder_hidden_states.to(self.connector_dtype)
        extra = {}
        if self.connector.reads_embeddings:
            audio_id = self.config.audio_token_id
            extra = {
                "embeddings": self.get_input_embeddings(),
                "blocked_ids": [] if audio_id is None else [audio_id],
            }
        if ctc_words is not None:
            if not self.connector.reads_embeddings:
                raise ValueError(f"ctc_words: the {self.config.connector} connector has no words slots")
            extra["words"] = ctc_words
        out = self.connector(frames, encoder_attention_mask.bool(), **extra)
        return out if self.connector.masks_slots else (*out, None)

    @torch.no_grad()
    def audio_token_statistics(self, **audio_inputs) -> dict[str, float]:
        """How informative the connector's audio tokens are, on a batch of clips (``audio_tokens``'
        arguments): ``token_diversity`` = mean pairwise cosine distance between the clips'
        mean audio tokens (0: every clip gives the same tokens, a collapsed connector), and
        ``token_norm_ratio`` = mean audio-token L2 norm / mean L2 norm of the LLM's input embeddings."""
        tokens, mask = self.audio_tokens(**audio_inputs)
        tokens, mask = tokens.float(), mask[..., None].float()
        clip = nn.functional.normalize((tokens * mask).sum(1) / mask.sum(1).clamp_min(1.0), dim=-1)
        n = clip.shape[0]
        if n < 2:
            raise ValueError("audio_token_statistics needs at least 2 clips to compare")
        cosine = (clip @ clip.T).sum() - clip.pow(2).sum()  # off-diagonal sum
        embedding_norm = self.get_input_embeddings().weight.float().norm(dim=-1).mean()
        token_norm = tokens.norm(dim=-1)[mask[..., 0].bool()].mean()
        return {
            "token_diversity": float(1.0 - cosine / (n * (n - 1))),
            "token_norm_ratio": float(token_norm / embedding_norm),
        }

    @property
    def connector_dtype(self) -> torch.dtype:
        return next(self.connector.parameters()).dtype

    def merge_audio(
        self, input_ids: torch.Tensor, audio_embeds: torch.Tensor | None, audio_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Token embeddings with the audio tokens scattered into the placeholder positions."""
        placeholder = input_ids == self.config.audio_token_id
        embeds = self.get_input_embeddings()(input_ids.masked_fill(placeholder, 0))
        n_slots = int(placeholder.sum())
        if audio_embeds is None:
            if n_slots:
                raise ValueError(f"the prompt has {n_slots} audio placeholders but no audio was given")
            return embeds
        valid = audio_embeds[audio_mask]  # (sum of valid tokens, H), clip by clip
        if n_slots != valid.shape[0]:
            raise ValueError(
                f"the prompt has {n_slots} audio placeholder tokens but the audio gives {valid.shape[0]} audio tokens; "
                "build the inputs with AudioLLMProcessor (it expands one placeholder per clip to the right count)."
            )
        return embeds.masked_scatter(placeholder[..., None], valid.to(embeds.dtype))

    def build_inputs(
        self,
        input_ids,
        attention_mask,
        audio,
        audio_attention_mask,
        encoder_hidden_states,
        encoder_attention_mask,
        ctc_words=None,
    ):
        has_audio = audio is not None or encoder_hidden_states is not None
        audio_embeds, audio_mask, attend = (
            self.connect(
                audio, audio_attention_mask, encoder_hidden_states, encoder_attention_mask, ctc_words
            )
            if has_audio
            else (None, None, None)
        )
        embeds = self.merge_audio(input_ids, audio_embeds, audio_mask)
        if attend is not None:
            attention_mask = self.mask_unused_slots(input_ids, attention_mask, attend[audio_mask])
        if attention_mask is None:  # no padding (generate() also drops an all-ones mask)
            return embeds, None, None
        # positions from the mask, so left padding does not shift a row's positions (the mask may
        # also cover cached tokens during generation: keep the positions of the current ones)
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)[:, -input_ids.shape[1] :]
        return embeds, attention_mask, position_ids

    def mask_unused_slots(self, input_ids, attention_mask, slot_used: torch.Tensor) -> torch.Tensor:
        """``attention_mask`` with the audio placeholders that hold no token (``slot_used`` False, one
        entry per placeholder in order) set to 0. The mask may be longer than ``input_ids`` (cached
        tokens before them, during generation): its last positions are the current ones."""
        placeholder = input_ids == self.config.audio_token_id
        unused = torch.zeros_like(placeholder).masked_scatter(placeholder, ~slot_used.to(placeholder.device))
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        current = attention_mask[:, -input_ids.shape[1] :].masked_fill(unused, 0)
        return torch.cat([attention_mask[:, : -input_ids.shape[1]], current], 1)

    # ------------------------------------------------------------------ label scoring (both heads)
    def label_scores(self, embeds, attention_mask, positions, label_ids: list[list[int]]) -> torch.Tensor:
        """log p(label | prompt) for every label: (B, C) (``layers.score_labels``)."""
        return score_labels(self.language_model, embeds, attention_mask, positions, label_ids)

    def with_prosody_scores(
        self,
        scores: torch.Tensor,
        prosody_values: torch.Tensor | None,
        prosody_reference: torch.Tensor | None = None,
        has_audio: bool = True,
    ) -> torch.Tensor:
        """(B, C) label scores plus, for a ``speaker_prosody`` model given audio, the prosody's own
        (``layers.ProsodyLabelScores``) relative to ``prosody_reference`` (B, 10), else the enrolled
        speaker's (``enroll_speaker``), else the training voices' average (or, for a model trained with
        ``prosody_reference_dropout``, none: the clip's own numbers). Text alone: unchanged."""
        if self.prosody is None or not has_audio:
            return scores
        reference = self._speaker_reference(prosody_values, prosody_reference)
        extra = self.prosody(prosody_values.to(scores.device), reference)
        if extra.shape != scores.shape:
            raise ValueError(
                f"prosody scores of shape {tuple(extra.shape)} for label scores of {tuple(scores.shape)}: "
                "prosody_values needs one row per clip"
            )
        return scores + extra.to(scores.dtype)

    # enroll_speaker / forget_speaker: the prosody head's reference (SpeakerReferenceMixin)

    def check_context(self, length: int) -> None:
        limit = getattr(self.config.text_config, "max_position_embeddings", None)
        if limit is not None and length > limit:
            raise ValueError(
                f"the input is {length} tokens (prompt + audio tokens), more than the LLM's context of {limit}; "
                "use shorter clips, the query_pooling connector, or a larger stack_factor."
            )

    # ------------------------------------------------------------------ building from parts, LoRA
    @classmethod
    def from_pretrained_components(
        cls,
        audio_model: str | os.PathLike,
        text_model: str | os.PathLike,
        labels: list[str],
        connector: str = "query_pooling",
        system_prompt: str | None = None,
        **config_kwargs,
    ):
        """A new model from a pretrained speech encoder and LLM (Hub ids or folders), and its processor.

        Returns ``(model, processor)``. The connector (and any head) is new; the LLM's embeddings
        grow by one row for the audio placeholder token. ``mapper_output_scale="auto"`` (the
        default) ties the query-pooling mapper's output gain to the LLM's embedding RMS. The config
        names both parts, so ``backbone_weights="referenced"`` checkpoints can leave them out.
        ``system_prompt``: the processor's system turn (``AudioLLMProcessor``; None: the chat template's own).
        """
        return build_from_components(
            cls, audio_model, text_model, labels, connector, system_prompt, **config_kwargs
        )

    def enable_lora(self):
        """Add LoRA adapters (peft) to the language model's attention projections, in place; the LLM's
        own weights freeze, the connector (and any head) keep training. Returns the model."""
        inject_lora(self)
        self.config.has_lora = True
        return self

    def merge_and_unload_lora(self):
        """Fold the LoRA adapters into the LLM's weights and remove them (in place); returns ``self``.
        The LLM now differs from its pretrained reference, so the config says the backbone weights are
        saved with the model (``backbone_weights="included"``): ``save_pretrained`` writes it whole."""
        merge_lora(self)
        self.config.has_lora = False
        self.config.backbone_weights = "included"
        return self

    def freeze_language_model(self) -> None:
        self.language_model.requires_grad_(False)

    def trainable_parameters(self) -> str:
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters())
        return f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / max(total, 1):.2f} %)"
