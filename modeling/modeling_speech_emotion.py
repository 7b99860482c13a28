"""Speech-encoder emotion classifier: ABHINAYA's S1 system and the MSP-Podcast challenge baseline.

    audio -> speech encoder (WavLM | HuBERT | wav2vec2 | data2vec-audio | Whisper encoder)
          -> weighted sum of all hidden layers -> attentive statistics pooling -> MLP -> emotion logits
                                                                              \\-> MLP -> A/V/D (optional, CCC loss)

Padding never changes a result: every stage is masked, and the Whisper encoder runs on unpadded
clips (positional embeddings sliced) instead of 30-s windows.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from .configuration_speech_emotion import SpeechEmotionConfig
from .layers import AttentiveStatisticsPooling, ClassificationHead, WeightedLayerSum
from .losses import CCCLoss, build_classification_loss
from .remote_code import add_auto_map_aliases


@dataclass
class SpeechEmotionClassifierOutput(SequenceClassifierOutput):
    """``SequenceClassifierOutput`` plus the dimensional predictions (B, len(config.dimensions))."""

    dimensional: torch.Tensor | None = None


class SpeechEncoder(nn.Module):
    """Runs any supported HF speech encoder and returns all hidden layers and a frame mask.

    Returns (hidden_states (B, L+1, T', D), mask (B, T') bool). Inputs longer than
    ``chunk_length_s`` are encoded chunk by chunk and concatenated along time.
    """

    def __init__(self, config: SpeechEmotionConfig):
        super().__init__()
        audio = config.audio_config
        self.is_whisper = audio.model_type == "whisper"
        self.model = WhisperEncoder(audio) if self.is_whisper else AutoModel.from_config(audio)
        if self.is_whisper:
            # frames of mel per chunk: Whisper's 30-s window at most
            self.chunk = min(int(config.chunk_length_s * 100), audio.max_source_positions * 2)
        else:
            self.chunk = int(config.chunk_length_s * 16000)
        # Encoders whose output at valid frames depends on padding: a group-normalised conv stem
        # (wav2vec2-base, HuBERT-base) normalises over time, and data2vec-audio's stacked positional
        # convolutions leak padded frames into valid ones. They encode a ragged batch clip by clip.
        self.padding_leaks = not self.is_whisper and (
            audio.model_type == "data2vec-audio" or getattr(audio, "feat_extract_norm", "layer") == "group"
        )

    # --- Whisper: conv stem + sliced positions + masked self-attention ------------------------------
    def _whisper(self, features: torch.Tensor, mask: torch.Tensor):
        enc = self.model
        features = features.transpose(1, 2)  # B, T, n_mels -> B, n_mels, T
        m = mask[:, None, :].to(features.dtype)  # B, 1, T
        # Zero padded positions between the convolutions, so a padded clip sees exactly the zeros of
        # the convolutions' own padding, as it would alone.
        x = nn.functional.gelu(enc.conv1(features * m)) * m
        x = nn.functional.gelu(enc.conv2(x))  # B, D, ceil(T/2)
        frame_mask = mask[:, ::2]  # B, T'
        x = x.permute(0, 2, 1) * frame_mask[..., None].to(x.dtype)
        if x.shape[1] > enc.embed_positions.num_embeddings:
            raise ValueError(
                f"Whisper encodes at most {enc.embed_positions.num_embeddings * 2} mel frames per chunk, got {features.shape[-1]}"
            )
        x = x + enc.embed_positions.weight[: x.shape[1]]
        bias = torch.zeros(frame_mask.shape, dtype=x.dtype, device=x.device)
        bias = bias.masked_fill(~frame_mask, torch.finfo(x.dtype).min)[:, None, None, :]  # B, 1, 1, T'
        states = [x]
        for layer in enc.layers:
            out = layer(x, bias)
            x = out[0] if isinstance(out, tuple) else out
            states.append(x)
        states[-1] = enc.layer_norm(x)
        return torch.stack(states, dim=1), frame_mask

    def _ssl(self, values: torch.Tensor, mask: torch.Tensor):
        if self.padding_leaks and values.shape[0] > 1 and not mask.all():
            outputs = [
                self._ssl(v[None, : int(m.sum())], m[None, : int(m.sum())]) for v, m in zip(values, mask)
            ]
            frames = max(o[0].shape[2] for o in outputs)
            states = torch.stack(
                [nn.functional.pad(o[0][0], (0, 0, 0, frames - o[0].shape[2])) for o in outputs]
            )
            frame_mask = torch.stack(
                [nn.functional.pad(o[1][0], (0, frames - o[1].shape[1])) for o in outputs]
            )
            return states, frame_mask
        out = self.model(values, attention_mask=mask.long(), output_hidden_states=True)
        frame_mask = self.model._get_feature_vector_attention_mask(
            out.last_hidden_state.shape[1], mask.long()
        ).bool()
        return torch.stack(out.hidden_states, dim=1), frame_mask

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None):
        if mask is None:
            mask = torch.ones(inputs.shape[:2], dtype=torch.bool, device=inputs.device)
        mask = mask.bool()
        encode = self._whisper if self.is_whisper else self._ssl
        length = inputs.shape[1]
        if length <= self.chunk:
            return encode(inputs, mask)
        # Long input: encode fixed-size chunks as one batch, then put them back in time order.
        n = math.ceil(length / self.chunk)
        pad = n * self.chunk - length
        batch = inputs.shape[0]
        # time is dim 1: (B, N) samples or (B, T, n_mels) frames
        inputs = nn.functional.pad(inputs, (0, 0) * (inputs.ndim - 2) + (0, pad))
        mask = nn.functional.pad(mask, (0, pad))
        chunks = inputs.reshape(batch * n, self.chunk, *inputs.shape[2:])
        chunk_mask = mask.reshape(batch * n, self.chunk)
        # An all-padding chunk still needs one "valid" position to keep softmaxes finite; it is
        # dropped again from the returned mask.
        empty = ~chunk_mask.any(-1)
        chunk_mask_safe = chunk_mask.clone()
        chunk_mask_safe[empty, 0] = True
        states, frame_mask = encode(chunks, chunk_mask_safe)
        frame_mask = frame_mask & ~empty[:, None]
        L, T, D = states.shape[1], states.shape[2], states.shape[3]
        states = states.reshape(batch, n, L, T, D).movedim(1, 2).reshape(batch, L, n * T, D)
        return states, frame_mask.reshape(batch, n * T)

    def freeze(self, config: SpeechEmotionConfig) -> None:
        if config.freeze_encoder:
            self.model.requires_grad_(False)
            return
        if config.freeze_feature_encoder:
            if self.is_whisper:
                for module in (self.model.conv1, self.model.conv2):
                    module.requires_grad_(False)
            else:
                self.model.freeze_feature_encoder()
        if config.num_trainable_encoder_layers is not None:
            layers = self.model.layers if self.is_whisper else self.model.encoder.layers
            keep = config.num_trainable_encoder_layers
            if not 0 <= keep <= len(layers):
                raise ValueError(f"num_trainable_encoder_layers must be in [0, {len(layers)}], got {keep}")
            self.model.requires_grad_(False)
            for layer in layers[len(layers) - keep :]:
                layer.requires_grad_(True)
            if keep:
                final_norm = (
                    self.model.layer_norm
                    if self.is_whisper
                    else getattr(self.model.encoder, "layer_norm", None)
                )
                if final_norm is not None:
                    final_norm.requires_grad_(True)


class SpeechEmotionPreTrainedModel(PreTrainedModel):
    config_class = SpeechEmotionConfig
    base_model_prefix = "ser"
    main_input_name = "input_values"
    supports_gradient_checkpointing = False
    _no_split_modules = [
        "WhisperEncoderLayer",
        "WavLMEncoderLayer",
        "Wav2Vec2EncoderLayer",
        "HubertEncoderLayer",
    ]
    _supports_sdpa = True

    def save_pretrained(self, save_directory, *args, **kwargs):
        super().save_pretrained(save_directory, *args, **kwargs)
        if self._auto_class is not None:
            add_auto_map_aliases(save_directory, "AutoModelForAudioClassification", ("AutoModel",))

    @torch.no_grad()
    def _init_weights(self, module):
        if isinstance(module, WeightedLayerSum):
            module.weights.zero_()
        elif isinstance(module, (ClassificationHead, AttentiveStatisticsPooling)):
            for sub in module.modules():
                if isinstance(sub, nn.Linear):
                    sub.weight.normal_(0.0, 0.02)
                    sub.bias.zero_()
        elif isinstance(module, PreTrainedModel) and module is not self:
            pass  # the encoder initialises itself


class SpeechEmotionForAudioClassification(SpeechEmotionPreTrainedModel):
    def __init__(self, config: SpeechEmotionConfig):
        super().__init__(config)
        self.encoder = SpeechEncoder(config)
        num_states = config.num_encoder_layers + 1
        self.layer_weights = WeightedLayerSum(num_states) if config.use_weighted_layer_sum else None
        hidden = config.encoder_hidden_size
        self.pooling = AttentiveStatisticsPooling(hidden, config.pooling_attention_size)
        self.classifier = ClassificationHead(
            2 * hidden, config.head_hidden_size, config.num_labels, config.head_dropout
        )
        self.regressor = (
            ClassificationHead(
                2 * hidden, config.head_hidden_size, len(config.dimensions), config.head_dropout
            )
            if config.dimensions
            else None
        )
        self.post_init()
        self.encoder.freeze(config)

    def train(self, mode: bool = True):
        """A frozen encoder stays in eval mode (no dropout), so its outputs match the cached ones."""
        super().train(mode)
        if self.config.freeze_encoder:
            self.encoder.eval()
        return self

    def classification_loss(self) -> nn.Module:
        """The configured loss; built per call (microseconds) so it never lives in the state dict."""
        c = self.config
        return build_classification_loss(
            c.loss_type,
            c.class_counts,
            focal_gamma=c.focal_gamma,
            vs_gamma=c.vs_gamma,
            vs_tau=c.vs_tau,
            class_weighting=c.class_weighting,
        )

    @classmethod
    def from_encoder_pretrained(
        cls, encoder_name_or_path: str | os.PathLike, id2label: dict | list, **config_kwargs
    ):
        """A new classifier around a pretrained speech encoder (a Hub id or a local folder).

        ``id2label``: ``{0: "neutral", ...}`` or a list of names. Other keyword arguments go to
        :class:`SpeechEmotionConfig`. The head is randomly initialised.
        """
        if isinstance(id2label, (list, tuple)):
            id2label = dict(enumerate(id2label))
        pretrained = AutoModel.from_pretrained(encoder_name_or_path)
        audio_config = pretrained.config
        config = SpeechEmotionConfig(
            audio_config=audio_config,
            id2label=id2label,
            label2id={v: k for k, v in id2label.items()},
            **config_kwargs,
        )
        model = cls(config)
        encoder = pretrained.encoder if audio_config.model_type == "whisper" else pretrained
        model.encoder.model.load_state_dict(encoder.state_dict())
        model.encoder.freeze(config)
        return model

    def pooled_representation(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if encoder_hidden_states is None:
            if input_values is None:
                raise ValueError(
                    "pass input_values / input_features (from the feature extractor) or encoder_hidden_states"
                )
            encoder_hidden_states, encoder_attention_mask = self.encode(input_values, attention_mask)
        if encoder_hidden_states.ndim == 3:  # one layer given: (B, T, D)
            if self.layer_weights is not None:
                raise ValueError(
                    "this model sums all encoder layers; pass encoder_hidden_states of shape (B, L+1, T, D)"
                )
            hidden = encoder_hidden_states
        elif self.layer_weights is not None:
            hidden = self.layer_weights(encoder_hidden_states)
        else:
            hidden = encoder_hidden_states[:, -1]
        return self.pooling(hidden, encoder_attention_mask)

    def encode(self, inputs: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """All encoder hidden states (B, L+1, T', D) and the frame mask (B, T'): what recipes cache."""
        return self.encoder(inputs, attention_mask)

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        dimensional_labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SpeechEmotionClassifierOutput:
        r"""
        input_values / input_features: waveform (B, N) or log-mel (B, T, n_mels) from the feature extractor.
        encoder_hidden_states (B, L+1, T', D) and encoder_attention_mask (B, T'): precomputed encoder
            outputs (see :meth:`encode`), used instead of audio when the encoder is frozen.
        labels: (B,) class ids. dimensional_labels: (B, len(config.dimensions)); NaN = missing.
        """
        inputs = input_values if input_values is not None else input_features
        pooled = self.pooled_representation(
            inputs, attention_mask, encoder_hidden_states, encoder_attention_mask
        )
        logits = self.classifier(pooled)
        dimensional = self.regressor(pooled) if self.regressor is not None else None
        loss = None
        if labels is not None:
            loss = self.classification_loss().to(logits.device)(logits.float(), labels.long())
        if dimensional_labels is not None and dimensional is not None:
            ccc = CCCLoss()(dimensional.float(), dimensional_labels.float())
            weight = self.config.dimensional_loss_weight
            loss = ccc * weight if loss is None else (1 - weight) * loss + weight * ccc
        return SpeechEmotionClassifierOutput(loss=loss, logits=logits, dimensional=dimensional)


__all__ = ["SpeechEmotionForAudioClassification", "SpeechEmotionPreTrainedModel"]
