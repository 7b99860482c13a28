"""Speech-encoder emotion classifier: ABHINAYA's S1 system and the MSP-Podcast challenge baseline.

    audio -> speech encoder (WavLM | HuBERT | wav2vec2 | data2vec-audio | Whisper encoder)
          -> weighted sum of all hidden layers -> attentive statistics pooling -> MLP -> emotion logits
                                                                              \\-> MLP -> A/V/D (optional, CCC loss)

Padding never changes a result: every stage is masked, and the Whisper encoder runs on unpadded
clips (positional embeddings sliced) instead of 30-s windows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import logging

from .configuration_speech_emotion import SpeechEmotionConfig
from .encoder_family import encoder_family
from .layers import (
    AttentiveStatisticsPooling,
    ClassificationHead,
    RunningFrameNorm,
    SpeakerAdversary,
    SpeakerRelativeProsody,
    WeightedLayerSum,
)
from .losses import CCCLoss, build_classification_loss
from .remote_code import add_auto_map_entries
from .speaker_reference import SpeakerReferenceMixin
from .speech_encoder import SpeechEncoder

logger = logging.get_logger(__name__)
# a channel that never moves over a speaker's frames (float16 caches) is divided by this, not by ~0
SPEAKER_STD_FLOOR = 1e-3


@dataclass
class SpeechEmotionClassifierOutput(SequenceClassifierOutput):
    """``SequenceClassifierOutput`` plus the dimensional predictions (B, len(config.dimensions))."""

    dimensional: torch.Tensor | None = None


class SpeechEmotionPreTrainedModel(PreTrainedModel):
    config_class = SpeechEmotionConfig
    base_model_prefix = "ser"
    # forward returns the mean loss of the batch it is given and ignores num_items_in_batch: the Trainer
    # must divide it by the gradient-accumulation steps (it skips that for models said to accept loss kwargs)
    accepts_loss_kwargs = False
    main_input_name = "input_values"
    supports_gradient_checkpointing = False
    _no_split_modules = [
        "WhisperEncoderLayer",
        "WavLMEncoderLayer",
        "Wav2Vec2EncoderLayer",
        "HubertEncoderLayer",
    ]
    _supports_sdpa = True

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        model = super().from_pretrained(*args, **kwargs)
        if isinstance(model, SpeechEmotionForAudioClassification):
            model._freeze_encoder()  # loading assigns fresh parameters (requires_grad=True)
        return model

    def save_pretrained(self, save_directory, *args, **kwargs):
        super().save_pretrained(save_directory, *args, **kwargs)
        if self._auto_class is not None:
            add_auto_map_entries(
                save_directory, {"AutoModel": "modeling_speech_emotion.SpeechEmotionForAudioClassification"}
            )

    @torch.no_grad()
    def _init_weights(self, module):
        if isinstance(module, WeightedLayerSum):
            module.weights.zero_()
        elif isinstance(module, (ClassificationHead, AttentiveStatisticsPooling, SpeakerAdversary)):
            for sub in module.modules():
                if isinstance(sub, nn.Linear):
                    sub.weight.normal_(0.0, 0.02)
                    sub.bias.zero_()
        elif isinstance(module, PreTrainedModel) and module is not self:
            pass  # the encoder initialises itself


class SpeechEmotionForAudioClassification(SpeakerReferenceMixin, SpeechEmotionPreTrainedModel):
    def __init__(self, config: SpeechEmotionConfig):
        super().__init__(config)
        self.encoder = SpeechEncoder(config.audio_config, config.chunk_length_s)
        num_states = config.num_encoder_layers + 1
        self.layer_weights = WeightedLayerSum(num_states) if config.use_weighted_layer_sum else None
        hidden = config.encoder_hidden_size
        # every layer read (all of them with the layer sum, else the last) standardised per channel
        layers_read = num_states if config.use_weighted_layer_sum else 1
        self.frame_norm = RunningFrameNorm(layers_read * hidden) if config.frame_norm == "global" else None
        self.pooling = AttentiveStatisticsPooling(hidden, config.pooling_attention_size)
        # speaker_prosody: the head reads the pooled vector (projected) beside the speaker-relative prosody
        self.prosody = (
            SpeakerRelativeProsody(2 * hidden, config.prosody_pooled_size)
            if getattr(config, "speaker_prosody", False)
            else None
        )
        self.classifier = ClassificationHead(
            self.prosody.output_size if self.prosody is not None else 2 * hidden,
            config.head_hidden_size,
            config.num_labels,
            config.head_dropout,
        )
        self.regressor = (
            ClassificationHead(
                2 * hidden, config.head_hidden_size, len(config.dimensions), config.head_dropout
            )
            if config.dimensions
            else None
        )
        self.speaker_adversary = (
            SpeakerAdversary(
                config.head_hidden_size, config.head_hidden_size, config.speaker_adversary_speakers
            )
            if getattr(config, "speaker_adversary_speakers", 0)
            else None
        )
        self.post_init()
        self._freeze_encoder()
        self._speaker_statistics = None  # set by enroll_speaker(); never saved

    def _freeze_encoder(self) -> None:
        c = self.config
        self.encoder.freeze(c.freeze_encoder, c.freeze_feature_encoder, c.num_trainable_encoder_layers)

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
        """A new classifier around a pretrained speech encoder (a Hub id, a local folder or an
        ``offline:<name>`` part, see ``offline_assets``).

        ``id2label``: ``{0: "neutral", ...}`` or a list of names. Other keyword arguments go to
        :class:`SpeechEmotionConfig`. The head is randomly initialised.
        """
        from .offline_assets import resolve_pretrained

        if isinstance(id2label, (list, tuple)):
            id2label = dict(enumerate(id2label))
        encoder_name_or_path = resolve_pretrained(encoder_name_or_path)
        pretrained = AutoModel.from_pretrained(encoder_name_or_path)
        audio_config = pretrained.config
        config = SpeechEmotionConfig(
            audio_config=audio_config,
            id2label=id2label,
            label2id={v: k for k, v in id2label.items()},
            **config_kwargs,
        )
        model = cls(config)
        encoder = encoder_family(audio_config).weights_module(pretrained)
        model.encoder.model.load_state_dict(encoder.state_dict())
        model._freeze_encoder()
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
        if self._speaker_statistics is not None:
            encoder_hidden_states = self._speaker_standardised(encoder_hidden_states)
        if encoder_hidden_states.ndim == 3:  # one layer given: (B, T, D)
            if self.layer_weights is not None:
                raise ValueError(
                    "this model sums all encoder layers; pass encoder_hidden_states of shape (B, L+1, T, D)"
                )
            encoder_hidden_states = encoder_hidden_states[:, None]
        elif self.layer_weights is None:
            encoder_hidden_states = encoder_hidden_states[:, -1:]
        if self.frame_norm is not None:
            encoder_hidden_states = self._standardised(encoder_hidden_states, encoder_attention_mask)
        if self.layer_weights is not None:
            hidden = self.layer_weights(encoder_hidden_states)
        else:
            hidden = encoder_hidden_states[:, -1]
        return self.pooling(hidden, encoder_attention_mask)

    @torch.no_grad()
    def enroll_speaker(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        prosody_values: torch.Tensor | None = None,
    ) -> None:
        """Standardise every following input with one speaker's statistics: the per-channel mean and
        standard deviation of every encoder layer over all valid frames of the reference clips given
        here (e.g. a few neutral recordings of the speaker, from the feature extractor as for
        ``forward``). This is what ``recipes/ssl_classifier.py --speaker_norm`` does to each training
        speaker's frames, so a model trained that way sees a new speaker as it saw its training voices.
        Lasts until :meth:`forget_speaker` (or the next enrolment); never saved with the model.

        A model with ``config.speaker_prosody`` keeps the mean of the clips' ``prosody_values`` (the
        feature extractor gives them) as the speaker's reference; its frames are standardised only if
        it was also trained with ``--speaker_norm``."""
        if self.prosody is not None:
            self._enroll_prosody(prosody_values)
            if not self._frames_speaker_normalised:
                return
        if encoder_hidden_states is None:
            inputs = input_values if input_values is not None else input_features
            if inputs is None:
                raise ValueError("enroll_speaker needs the reference clips' input_values / input_features")
            encoder_hidden_states, encoder_attention_mask = self.encode(inputs, attention_mask)
        if encoder_hidden_states.ndim != 4:
            raise ValueError(
                "enroll_speaker needs every encoder layer, (B, L+1, T, D): found shape "
                f"{tuple(encoder_hidden_states.shape)}"
            )
        if not getattr(self.config, "speaker_normalization", None):
            logger.warning(
                "this model was trained on frames that were not speaker-normalised; enrolling a speaker "
                "changes what it sees (train with --speaker_norm true to use enrolment)"
            )
        b, _, t, _ = encoder_hidden_states.shape
        mask = (
            torch.ones(b, t, dtype=torch.bool, device=encoder_hidden_states.device)
            if encoder_attention_mask is None
            else encoder_attention_mask.bool()
        )
        frames = encoder_hidden_states.double().permute(0, 2, 1, 3)[mask]  # N, L+1, D
        if frames.shape[0] == 0:
            raise ValueError(
                "the reference clips have no valid encoder frame: give at least one non-empty clip"
            )
        mean = frames.mean(0)
        std = frames.var(0, unbiased=False).sqrt().clamp_min(SPEAKER_STD_FLOOR)
        self._speaker_statistics = (mean, std)

    def forget_speaker(self) -> None:
        """Back to the frames as the encoder gives them (undoes :meth:`enroll_speaker`)."""
        self._speaker_statistics = None
        self._prosody_reference = None

    def _speaker_standardised(self, states: torch.Tensor) -> torch.Tensor:
        """(B, L+1, T, D) standardised with the enrolled speaker's (L+1, D) statistics."""
        mean, std = self._speaker_statistics
        if states.ndim != 4 or states.shape[1] != mean.shape[0] or states.shape[-1] != mean.shape[-1]:
            raise ValueError(
                f"the enrolled statistics are of {tuple(mean.shape)} (layers, channels); these encoder outputs "
                f"are {tuple(states.shape)}"
            )
        mean = mean.to(states.device, states.dtype)[None, :, None, :]
        std = std.to(states.device, states.dtype)[None, :, None, :]
        return (states - mean) / std

    def _standardised(self, states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """(B, L, T, D) with every layer's channels standardised (``config.frame_norm="global"``)."""
        b, layers, t, d = states.shape
        if mask is None:
            mask = torch.ones(b, t, dtype=torch.bool, device=states.device)
        flat = states.permute(0, 2, 1, 3).reshape(b, t, layers * d)
        flat = self.frame_norm(flat, mask.bool())
        return flat.reshape(b, t, layers, d).permute(0, 2, 1, 3)

    def _with_prosody(self, pooled, prosody_values, prosody_reference) -> torch.Tensor:
        """What the head reads: the pooled vector, or (``speaker_prosody``) its projection beside the
        speaker-relative prosody numbers."""
        if self.prosody is None:
            return pooled
        return self.prosody(
            pooled, prosody_values, self._speaker_reference(prosody_values, prosody_reference)
        )

    @property
    def _frames_speaker_normalised(self) -> bool:
        """Trained on encoder frames standardised per speaker (``--speaker_norm``; the recipe's note in
        ``config.speaker_normalization`` names them), so enrolment gathers frame statistics too."""
        return "frames" in str(getattr(self.config, "speaker_normalization", None) or "")

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
        calibrated: bool = True,
        prosody_values: torch.Tensor | None = None,
        prosody_reference: torch.Tensor | None = None,
        speaker_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> SpeechEmotionClassifierOutput:
        r"""
        input_values / input_features: waveform (B, N) or log-mel (B, T, n_mels) from the feature extractor.
        encoder_hidden_states (B, L+1, T', D) and encoder_attention_mask (B, T'): precomputed encoder
            outputs (see :meth:`encode`), used instead of audio when the encoder is frozen.
        labels: (B,) class ids. dimensional_labels: (B, len(config.dimensions)); NaN = missing.
        calibrated: divide the logits by ``config.calibration_temperature`` (what the pipeline's scores
            come from); ``False``: the logits as trained. The loss is on the logits as trained.
        prosody_values (B, 10): the clip's measured prosody numbers (``config.speaker_prosody``; the
            feature extractor gives them). prosody_reference (B, 10): each clip's speaker reference; by
            default the enrolled speaker's (``enroll_speaker``), else the training voices' average.
        speaker_ids (B,): each clip's training-speaker index (-100: none; named without "label", so a
            Trainer's default label names stay ``labels`` and ``dimensional_labels``), read in training by a
            model with a speaker adversary (``config.speaker_adversary_speakers``), whose loss joins
            ``loss`` when ``labels`` are given too.
        """
        inputs = input_values if input_values is not None else input_features
        pooled = self.pooled_representation(
            inputs, attention_mask, encoder_hidden_states, encoder_attention_mask
        )
        head_input = self._with_prosody(pooled, prosody_values, prosody_reference)
        hidden = self.classifier.hidden(head_input)
        logits = self.classifier.out_proj(hidden)
        dimensional = self.regressor(pooled) if self.regressor is not None else None
        loss = None
        if labels is not None:
            loss = self.classification_loss().to(logits.device)(logits.float(), labels.long())
        if dimensional_labels is not None and dimensional is not None:
            ccc = CCCLoss()(dimensional.float(), dimensional_labels.float())
            weight = self.config.dimensional_loss_weight
            loss = ccc * weight if loss is None else (1 - weight) * loss + weight * ccc
        if (
            loss is not None
            and speaker_ids is not None
            and self.speaker_adversary is not None
            and self.training
        ):
            weight = self.config.speaker_adversary_weight
            loss = loss + self.speaker_adversary(hidden, speaker_ids.to(hidden.device), weight)
        if calibrated and self.config.calibration_temperature != 1.0:
            logits = logits / self.config.calibration_temperature
        return SpeechEmotionClassifierOutput(loss=loss, logits=logits, dimensional=dimensional)


__all__ = ["SpeechEmotionForAudioClassification", "SpeechEmotionPreTrainedModel"]
