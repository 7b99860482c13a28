"""Configuration of the speech-encoder emotion classifier (ABHINAYA S1, MSP-Podcast baseline)."""

from __future__ import annotations

import math

from transformers import AutoConfig, PreTrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from .encoder_family import encoder_family

# Encoders the classifier can wrap, by `model_type`. Whisper contributes its encoder only.
SUPPORTED_ENCODERS = ("wavlm", "hubert", "wav2vec2", "data2vec-audio", "whisper")
LOSS_TYPES = ("ce", "weighted_ce", "focal", "vector_scaling")
DIMENSIONS = ("arousal", "valence", "dominance")


def check_label_names(labels, source: str = "labels", first: int = 1) -> list[str]:
    """A label set: a list of distinct, non-empty names, in class-id order (shared by the configs of
    this folder; recipes check theirs with ``recipes/validation.py``'s ``check_labels``). Entries are
    named by position from ``first`` (0: by class id)."""
    where, places = ("id", "ids") if first == 0 else ("entry", "positions")
    if isinstance(labels, (str, bytes)) or not isinstance(labels, (list, tuple)):
        raise ValueError(
            f"{source} must be a list of label names in class-id order (e.g. ['neutral', 'happy', 'sad']), "
            f"found {type(labels).__name__} {labels!r:.80}; write the names as a list."
        )
    positions: dict[str, list[int]] = {}
    for i, label in enumerate(labels, first):
        if not isinstance(label, str) or not label.strip():
            raise ValueError(
                f"{source}: {where} {i} is {type(label).__name__} {label!r:.60}; each label must be a non-empty "
                "name. Write the labels as a flat list of names."
            )
        positions.setdefault(label, []).append(i)
    repeated = [
        f"{label!r} at {places} {', '.join(map(str, at))}" for label, at in positions.items() if len(at) > 1
    ]
    if repeated:
        raise ValueError(f"{source} repeats {'; '.join(repeated)}; list each label once.")
    return list(labels)


def check_id2label(id2label: dict, labels: list[str] | None = None, label2id: dict | None = None) -> None:
    """``id2label`` numbers the classes 0..n-1 with distinct names; with ``labels`` (the order a model
    scores the classes in) it must be ``dict(enumerate(labels))``, and ``label2id`` its inverse."""
    ids = sorted(id2label)
    if ids != list(range(len(ids))):
        raise ValueError(
            f"id2label ids must be 0..{len(ids) - 1} (one per output of the classifier), found {ids}; "
            "renumber the labels from 0 without gaps."
        )
    names = check_label_names([id2label[i] for i in ids], "id2label", first=0)
    if labels:
        expected = dict(enumerate(labels))
        differ = [i for i in sorted(set(expected) | set(id2label)) if expected.get(i) != id2label.get(i)]
        if differ:
            found = ", ".join(f"{i}: {id2label.get(i)!r} (labels: {expected.get(i)!r})" for i in differ[:8])
            raise ValueError(
                f"id2label disagrees with labels at ids {differ}: {found}. `labels` is the order the model "
                f"scores the classes in, so id2label must be {expected}; fix id2label (and label2id), or "
                "remove both from config.json to derive them from labels."
            )
    if label2id:
        inverse = {name: i for i, name in enumerate(names)}
        try:
            given = {name: int(i) for name, i in label2id.items()}
        except (TypeError, ValueError):
            given = dict(label2id)
        if given != inverse:
            raise ValueError(
                f"label2id {dict(label2id)} is not the inverse of id2label {dict(id2label)}; it must be "
                f"{inverse}. Fix label2id, or remove it to derive it from id2label."
            )


def check_positive(**sizes) -> None:
    """Refuse a size (``name=value``) that is not a whole number >= 1."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"{name} must be a whole number >= 1 (a layer size), found {value!r}; set {name} >= 1."
            )


def check_temperature(value) -> float:
    """``calibration_temperature``: a finite number > 0 (the classifier divides its logits by it)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"calibration_temperature must be a finite number > 0 (the logits are divided by it; 1.0 leaves "
            f"them as trained), found {value!r}; set the temperature fitted by serhub.calibration."
            "fit_temperature, or remove calibration_temperature from config.json for 1.0."
        )
    return float(value)


def audio_config_from(value) -> PreTrainedConfig:
    """A sub-config from a config object or its dict (dispatching on ``model_type``)."""
    if isinstance(value, PreTrainedConfig):
        config = value
    elif isinstance(value, dict):
        if "model_type" not in value:
            raise ValueError("audio_config needs a 'model_type' key (e.g. 'wavlm' or 'whisper')")
        value = dict(value)
        config = CONFIG_MAPPING[value.pop("model_type")](**value)
    else:
        raise ValueError(f"audio_config must be a config or a dict, got {type(value).__name__}")
    if config.model_type not in SUPPORTED_ENCODERS:
        raise ValueError(
            f"unsupported speech encoder {config.model_type!r}; supported: {', '.join(SUPPORTED_ENCODERS)}"
        )
    return config


FRAME_NORMS = ("none", "global")


class SpeechEmotionConfig(PreTrainedConfig):
    r"""Speech encoder -> (weighted layer sum) -> attentive statistics pooling -> MLP head.

    Args:
        audio_config: config (or dict) of the speech encoder: WavLM, HuBERT, wav2vec2, data2vec-audio
            or Whisper (encoder only).
        use_weighted_layer_sum: learn a softmax-weighted sum of all hidden layers instead of using the last.
        frame_norm: "global" standardises every encoder layer's frames per channel with statistics
            gathered over the training frames (``layers.RunningFrameNorm``, kept in the model so
            inference does the same) before the layer sum; "none" (default): the raw frames.
        pooling_attention_size: hidden size of the attentive pooling's scoring MLP.
        head_hidden_size, head_dropout: the classification MLP.
        freeze_encoder: keep the whole encoder frozen (its outputs can then be cached).
        freeze_feature_encoder: freeze only the convolutional feature encoder (wav2vec2 family) or the
            convolutional stem (Whisper).
        num_trainable_encoder_layers: fine-tune only the top N transformer layers (None: all, unless frozen).
        loss_type: "ce" | "weighted_ce" | "focal" | "vector_scaling" (see ``modeling/losses.py``).
        class_counts: training-set count per label id; weights the losses that need it.
        focal_gamma, vs_gamma, vs_tau, class_weighting: loss parameters.
        dimensions: names of the regression targets of an optional dimensional head trained with a
            CCC loss jointly with the categorical head, e.g. ("arousal", "valence", "dominance").
        dimensional_loss_weight: weight of the CCC loss in the total loss.
        chunk_length_s: inputs longer than this are encoded in chunks of this length (then pooled
            together), so long recordings fit in memory and Whisper's 30 s window.
        calibration_temperature: T > 0 the forward divides the logits by (temperature scaling,
            ``serhub/calibration.py``), so the pipeline's scores are calibrated; 1.0: as trained.
        speaker_prosody: the head also reads ten measured prosody numbers of the clip
            (``prosody.measure_prosody``; the feature extractor gives them as ``prosody_values``) minus
            the speaker's reference (their mean over a few enrolled clips: ``enroll_speaker``), beside
            the pooled vector projected to ``prosody_pooled_size`` numbers.
        prosody_pooled_size: the pooled vector's size beside the prosody numbers (``speaker_prosody``).
        speaker_adversary_speakers: > 0 adds a speaker adversary (``layers.SpeakerAdversary``) over
            that many training speakers: in training, ``forward(speaker_ids=...)`` adds the
            adversary's speaker cross-entropy and ``speaker_adversary_weight`` times the head's
            confusion loss (the adversary's guess kept uniform) to the loss. Inference never reads it.
            0 (default): none.
        speaker_adversary_weight: the confusion loss's weight (> 0).
    """

    model_type = "ser_speech_emotion"
    sub_configs = {"audio_config": AutoConfig}

    def __init__(
        self,
        audio_config=None,
        use_weighted_layer_sum: bool = True,
        frame_norm: str = "none",
        pooling_attention_size: int = 128,
        head_hidden_size: int = 256,
        head_dropout: float = 0.1,
        freeze_encoder: bool = True,
        freeze_feature_encoder: bool = True,
        num_trainable_encoder_layers: int | None = None,
        loss_type: str = "ce",
        class_counts: list[int] | None = None,
        focal_gamma: float = 2.0,
        vs_gamma: float = 0.2,
        vs_tau: float = 1.0,
        class_weighting: str = "inverse",
        dimensions: list[str] | tuple[str, ...] = (),
        dimensional_loss_weight: float = 0.5,
        chunk_length_s: float = 30.0,
        calibration_temperature: float = 1.0,
        speaker_prosody: bool = False,
        prosody_pooled_size: int = 16,
        speaker_adversary_speakers: int = 0,
        speaker_adversary_weight: float = 0.5,
        **kwargs,
    ):
        self.audio_config = audio_config_from(
            audio_config if audio_config is not None else {"model_type": "wavlm"}
        )
        self.use_weighted_layer_sum = use_weighted_layer_sum
        if use_weighted_layer_sum:
            # LayerDrop skips layers at random in training, and the layer sum needs every layer.
            for name in ("layerdrop", "encoder_layerdrop"):
                if getattr(self.audio_config, name, 0.0):
                    setattr(self.audio_config, name, 0.0)
        if frame_norm not in FRAME_NORMS:
            raise ValueError(f"frame_norm must be one of {FRAME_NORMS}, found {frame_norm!r}")
        self.frame_norm = frame_norm
        check_positive(pooling_attention_size=pooling_attention_size, head_hidden_size=head_hidden_size)
        self.pooling_attention_size = pooling_attention_size
        self.head_hidden_size = head_hidden_size
        self.head_dropout = head_dropout
        self.freeze_encoder = freeze_encoder
        self.freeze_feature_encoder = freeze_feature_encoder
        self.num_trainable_encoder_layers = num_trainable_encoder_layers
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
        self.loss_type = loss_type
        self.class_counts = list(class_counts) if class_counts is not None else None
        self.focal_gamma = focal_gamma
        self.vs_gamma = vs_gamma
        self.vs_tau = vs_tau
        self.class_weighting = class_weighting
        self.dimensions = list(dimensions)
        self.dimensional_loss_weight = dimensional_loss_weight
        if chunk_length_s <= 0:
            raise ValueError(f"chunk_length_s must be positive, got {chunk_length_s}")
        self.chunk_length_s = chunk_length_s
        self.calibration_temperature = check_temperature(calibration_temperature)
        check_positive(prosody_pooled_size=prosody_pooled_size)
        self.speaker_prosody = bool(speaker_prosody)
        self.prosody_pooled_size = prosody_pooled_size
        if (
            int(speaker_adversary_speakers) < 0
            or int(speaker_adversary_speakers) != speaker_adversary_speakers
        ):
            raise ValueError(
                "speaker_adversary_speakers is the number of training speakers (0: no adversary), found "
                f"{speaker_adversary_speakers!r}"
            )
        if speaker_adversary_speakers and not speaker_adversary_weight > 0:
            raise ValueError(
                f"speaker_adversary_weight must be > 0 with a speaker adversary, found {speaker_adversary_weight!r}"
            )
        self.speaker_adversary_speakers = int(speaker_adversary_speakers)
        self.speaker_adversary_weight = float(speaker_adversary_weight)
        super().__init__(**kwargs)
        check_id2label(self.id2label, label2id=self.label2id)
        if self.class_counts is not None and len(self.class_counts) != self.num_labels:
            raise ValueError(
                f"class_counts has {len(self.class_counts)} entries but there are {self.num_labels} labels "
                f"({list(self.id2label.values())}); give one count per label, in label-id order."
            )

    @property
    def encoder_hidden_size(self) -> int:
        return encoder_family(self.audio_config).hidden_size

    @property
    def num_encoder_layers(self) -> int:
        return encoder_family(self.audio_config).num_layers


__all__ = [
    "SpeechEmotionConfig",
    "check_id2label",
    "check_label_names",
    "check_positive",
    "check_temperature",
]
