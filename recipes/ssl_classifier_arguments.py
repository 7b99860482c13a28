"""The speech classifier's model arguments (``ModelArguments``) and the checks of its speaker-adversary
settings, made before any folder is claimed; the recipe is ``recipes/ssl_classifier.py``."""

from __future__ import annotations

from dataclasses import dataclass, field

from serhub.recipes.logs import get_logger
from serhub.recipes.speaker_prosody import check_speaker_data
from serhub.recipes.ssl_classifier_data import training_speakers

logger = get_logger("ssl_classifier")


@dataclass
class ModelArguments:
    encoder_name_or_path: str = field(
        default="offline:whisper-tiny.en",
        metadata={
            "help": "speech encoder (Hub id, folder or offline:<name>): WavLM, HuBERT, wav2vec2, data2vec-audio, Whisper"
        },
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "continue from a serhub classifier instead"}
    )
    use_weighted_layer_sum: bool = True
    frame_norm: str = field(
        default="global",
        metadata={
            "help": "global: standardise every encoder layer's frames with training-set statistics (kept in "
            "the model); none: the raw frames"
        },
    )
    freeze_encoder: bool = True
    freeze_feature_encoder: bool = True
    num_trainable_encoder_layers: int | None = None
    loss_type: str = field(
        default="weighted_ce", metadata={"help": "ce | weighted_ce | focal | vector_scaling"}
    )
    focal_gamma: float = 2.0
    vs_gamma: float = 0.2
    vs_tau: float = 1.0
    class_weighting: str = "inverse"
    head_hidden_size: int = 256
    pooling_attention_size: int = 128
    head_dropout: float = 0.1
    dimensions: list[str] = field(
        default_factory=list, metadata={"help": "e.g. arousal valence dominance: adds a CCC-trained head"}
    )
    trim_silence_db: float | None = field(
        default=None,
        metadata={
            "help": "cut each clip's leading/trailing audio quieter than this many dB below its loudest frame, "
            "in training and in the saved model's feature extractor (so uncut clips and the timeline's voice "
            "segments look alike to it), e.g. 35; default: clips as given"
        },
    )
    trim_noise_margin_db: float | None = field(
        default=None,
        metadata={
            "help": "with --trim_silence_db: a frame is speech only if it is also this many dB above the clip's "
            "noise floor, so a noisy recording's pauses are cut too (e.g. 10); default: the loudest frame alone"
        },
    )
    speaker_prosody: bool = field(
        default=False,
        metadata={
            "help": "the head also reads ten measured prosody numbers per clip (pitch level, spread and movement, "
            "voicing, rhythm) minus the speaker's reference: their mean over 2 of the speaker's clips, neutral "
            "first (--speaker_column); at inference the speaker is enrolled (model.enroll_speaker, serhub "
            "evaluate --enroll_per_speaker). Needs the encoder cache and swift-f0"
        },
    )
    speaker_adversary_weight: float = field(
        default=0.0,
        metadata={
            "help": "> 0: a speaker adversary learns to name each clip's training speaker (--speaker_column) "
            "from the head's hidden layer, and the head learns (with this weight) hidden layers from which "
            "its guess is uniform; training only, the saved model is used as without it. 0: off"
        },
    )
    speaker_adversary_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "the speaker adversary's own learning rate (default: --learning_rate); it must learn to "
            "name the speakers before its guess tells the head anything"
        },
    )
    speaker_norm: bool = field(
        default=False,
        metadata={
            "help": "standardise the cached encoder frames per speaker (--speaker_column): training speakers "
            "with their own statistics, validation and test speakers with theirs (transductive); the test "
            "split is also scored per recording (each clip with its own statistics). Needs the encoder cache"
        },
    )


def check_speaker_adversary(model_args) -> None:
    """``--speaker_adversary_weight`` as given, before anything is loaded."""
    weight = model_args.speaker_adversary_weight
    if not weight == weight or weight < 0:  # NaN too
        raise ValueError(
            f"--speaker_adversary_weight is the speaker-confusion loss's weight, >= 0 (0: off); found {weight}"
        )
    if weight > 0 and model_args.model_name_or_path:
        raise ValueError(
            "--speaker_adversary_weight trains a new model's speaker adversary; it cannot be added when "
            "continuing from --model_name_or_path (leave it at 0)"
        )


def speaker_adversary_speakers(model_args, data_args, data) -> list[str] | None:
    """The training speakers a speaker adversary names (``--speaker_adversary_weight`` > 0), checked
    before any write; None without one."""
    if model_args.speaker_adversary_weight == 0:
        return None
    train = data[data_args.train_split]
    check_speaker_data("--speaker_adversary_weight", data_args, train.column_names, heldout_enrols=False)
    speakers = training_speakers(train, data_args.speaker_column)
    if len(speakers) < 2:
        raise ValueError(
            f"--speaker_adversary_weight needs at least 2 training speakers to tell apart; the training split "
            f"has {len(speakers)} in {data_args.speaker_column!r}"
        )
    logger.info(
        "speaker adversary over %d training speakers (confusion weight %.3g)",
        len(speakers),
        model_args.speaker_adversary_weight,
    )
    return speakers


__all__ = ["ModelArguments", "check_speaker_adversary", "speaker_adversary_speakers"]
