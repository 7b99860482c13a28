"""Configuration of serhub's audio-LLMs: speech encoder -> connector -> causal LLM (EmoSLLM, THAU-UPM
Whisper-LLM, ABHINAYA's LLM + attentive pooling heads)."""

from __future__ import annotations

from transformers import AutoConfig, PreTrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from .configuration_speech_emotion import (
    LOSS_TYPES,
    audio_config_from,
    check_id2label,
    check_label_names,
    check_temperature,
)
from .connectors import connector_class
from .encoder_family import encoder_family

CLASSIFICATION_MODES = ("label_logits", "transcript_conditioned", "pooling_head", "descriptor_conditioned")
BACKBONE_WEIGHTS = ("included", "referenced")
# training settings that earlier configs held; the objective (recipes/objectives.py) holds them now
LEGACY_TRAINING_KEYS = ("loss_type", "class_counts", "focal_gamma", "vs_gamma", "vs_tau", "kl_weight")


def text_config_from(value) -> PreTrainedConfig:
    if isinstance(value, PreTrainedConfig):
        return value
    if isinstance(value, dict):
        if "model_type" not in value:
            raise ValueError("text_config needs a 'model_type' key (e.g. 'llama', 'gemma', 'qwen2')")
        value = dict(value)
        return CONFIG_MAPPING[value.pop("model_type")](**value)
    raise ValueError(f"text_config must be a config or a dict, got {type(value).__name__}")


def check_lora_rank(lora_r: int) -> None:
    """The LoRA rank is a whole number >= 0 (0: no LoRA)."""
    if isinstance(lora_r, bool) or not isinstance(lora_r, int) or lora_r < 0:
        raise ValueError(f"lora_r is the LoRA rank, a whole number >= 0 (0: no LoRA), found {lora_r!r}.")


def check_loss_and_lora(loss_type: str, lora_r: int) -> None:
    """The loss is one of ``LOSS_TYPES`` (``modeling/losses.py``) and the LoRA rank is >= 0 (0: no LoRA)."""
    if loss_type not in LOSS_TYPES:
        raise ValueError(
            f"loss_type must be one of {LOSS_TYPES} (see modeling/losses.py), found {loss_type!r}; pick one of them."
        )
    check_lora_rank(lora_r)


def check_class_counts(class_counts: list | None, num_labels: int) -> None:
    """One training-set count per label, in label-id order."""
    if class_counts is not None and len(class_counts) != num_labels:
        raise ValueError(
            f"class_counts has {len(class_counts)} entries but there are {num_labels} labels; give one count "
            "per label, in label-id order."
        )


class AudioLLMConfig(PreTrainedConfig):
    r"""The model's architecture, prompt and checkpoint format. How it is trained (the classification
    loss and its class weights, the KL weight, the ASR weight) is the training objective's
    (``recipes/objectives.py``), not the model's: ``forward`` returns plain cross-entropy losses.

    Args:
    audio_config: the speech encoder (WavLM, HuBERT, wav2vec2, data2vec-audio or Whisper); frozen.
    text_config: the causal LLM (any ``AutoModelForCausalLM`` config: Llama, Gemma, Qwen2, ...).
    connector: "query_pooling" (EmoSLLM's QPMapper: ``num_queries`` learnable queries through a
        ``mapper_layers``-layer transformer encoder -> that many audio tokens per clip) or "linear"
        (THAU's projector: ``stack_factor`` consecutive frames stacked, then one linear layer ->
        ceil(frames / stack_factor) audio tokens), or "vae_ib" (the descriptor system, arXiv:2505.23236:
        two variational information-bottleneck branches, content and descriptor, each over its own
        weighted sum of the encoder's layers, ``vib_latent_size`` latents per frame, ``stack_factor``
        frames stacked into an MLP adapter; ceil(frames / stack_factor) tokens per branch, each
        group in its own place of the prompt).
    vib_initial_log_var: where the posteriors' log sigma^2 start ("vae_ib"): -5 (sigma 0.08) starts the
        branches nearly deterministic, so the LLM reads the audio rather than noise from the first
        steps; the KL term (weighted by the training objective, ``recipes/objectives.py``) then sets
        how much noise they keep. 0: sigma 1, the usual VAE start.
    mapper_frame_norm: how the query-pooling mapper normalises the encoder's frames: "global"
        (per-channel standardisation with statistics gathered over the training frames, the default),
        "layer" (LayerNorm per frame) or "none" (the paper's raw frames).
    projector_frame_norm: how the linear projector normalises the encoder's frames: "none" (THAU's raw
        frames, the default of a config built without it, so earlier checkpoints load unchanged),
        "global" (per-channel standardisation with training-set statistics, the recipes' default) or
        "layer" (LayerNorm per frame).
    mapper_positions: add sinusoidal time positions to the frames (default True).
    mapper_output_scale: the audio tokens are RMS-normalised with a learned gain starting at this
        value; ``from_pretrained_components`` sets it to the LLM's input-embedding RMS. None: no
        output normalisation (the paper's plain linear output). See ``connectors.QueryPoolingMapper``.
    labels: the emotion label set (names, in class-id order).
    prompt: the tokenised prompt format (``AudioLLMProcessor.prompt_config()`` fills it), so that
        ``pipeline("audio-classification")`` runs with only the feature extractor:
        ``audio_token_id`` (the placeholder repeated once per audio token), ``label_token_ids`` (each
        label as the answer right after the assistant turn starts), ``emotion_label_token_ids`` (each
        label after "| Emotion:"), ``input_ids`` (the classification prompt, one placeholder),
        ``joint_input_ids`` (the joint task's prompt ending with "| ASR:", the
        "transcript_conditioned" mode), ``emotion_prefix_ids`` (" | Emotion:", appended after a
        generated transcript) and ``transcript_stop_ids`` (tokens that end that transcript).
    classification_mode: how ``AudioLLMForAudioClassification`` scores labels: "label_logits"
        (next-token log-likelihood of each label, THAU), "transcript_conditioned" (write the
        transcript first, then score the labels, EmoSLLM), "descriptor_conditioned" (write the
        transcript and the speech descriptors, then score the labels; the descriptor system) or
        "pooling_head" (attentive statistics pooling over the LLM's last hidden states + linear
        head, ABHINAYA T2/S2).
    lora_r, lora_alpha, lora_dropout, lora_target_modules: LoRA on the LLM only (a regex over the
        language model's module names; the encoder is never adapted). lora_r=0: no LoRA.
    has_lora: the language model carries LoRA adapters (set by ``enable_lora``; a checkpoint with
        them rebuilds them before loading).
    backbone_weights: "included" (``save_pretrained`` writes every weight: a self-contained model)
        or "referenced" (it leaves out the frozen encoder and LLM, and ``from_pretrained`` loads them
        from ``audio_model_name_or_path`` / ``text_model_name_or_path``: a light checkpoint of what
        trains, as training checkpoints are).
    calibration_temperature: the classifier's logits are divided by it (``serhub.calibration`` fits
        it on validation after training; 1: as trained).
    speaker_prosody: the label scores also get a small MLP's scores (``prosody_hidden_size`` hidden
        units) over ten measured prosody numbers of the clip relative to its speaker's reference
        (``layers.ProsodyLabelScores``; ``enroll_speaker`` sets the reference). Its inputs,
        ``prosody_values``, come from the feature extractor (``return_prosody=True``).
    prosody_reference_dropout: the share of training clips that were shown no speaker reference (their
        own numbers as the reference: the prosody says nothing, the LLM's scores must carry them). A
        model trained with it (> 0) reads a clip whose speaker is not enrolled the same way; one
        trained without it reads such a clip against the training voices' average reference.
    """

    model_type = "ser_audio_llm"
    sub_configs = {"audio_config": AutoConfig, "text_config": AutoConfig}

    def __init__(
        self,
        audio_config=None,
        text_config=None,
        connector: str = "query_pooling",
        num_queries: int = 32,
        mapper_layers: int = 2,
        mapper_hidden_size: int | None = None,
        mapper_heads: int = 8,
        mapper_frame_norm: str = "global",
        mapper_positions: bool = True,
        projector_frame_norm: str = "none",
        mapper_output_scale: float | None = None,
        stack_factor: int = 4,
        vib_latent_size: int = 256,
        vib_initial_log_var: float = -5.0,
        labels: list[str] | None = None,
        prompt: dict | None = None,
        max_transcript_tokens: int = 48,
        max_descriptor_tokens: int = 24,
        classification_mode: str = "label_logits",
        pooling_attention_size: int = 128,
        lora_r: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.05,
        lora_target_modules: str = r".*\.(q_proj|k_proj|v_proj|o_proj)",
        has_lora: bool = False,
        backbone_weights: str = "included",
        chunk_length_s: float = 30.0,
        calibration_temperature: float = 1.0,
        speaker_prosody: bool = False,
        prosody_hidden_size: int = 32,
        prosody_reference_dropout: float = 0.0,
        audio_model_name_or_path: str | None = None,
        text_model_name_or_path: str | None = None,
        **kwargs,
    ):
        for key in LEGACY_TRAINING_KEYS:  # configs saved before these moved to the training objective
            kwargs.pop(key, None)
        self.audio_config = audio_config_from(
            audio_config if audio_config is not None else {"model_type": "whisper"}
        )
        self.text_config = text_config_from(
            text_config if text_config is not None else {"model_type": "llama"}
        )
        if classification_mode not in CLASSIFICATION_MODES:
            raise ValueError(
                f"classification_mode must be one of {CLASSIFICATION_MODES}, got {classification_mode!r}"
            )
        if mapper_output_scale is not None and mapper_output_scale <= 0:
            raise ValueError(f"mapper_output_scale must be > 0 (or None), got {mapper_output_scale}")
        self.connector = connector
        self.num_queries = num_queries
        self.mapper_layers = mapper_layers
        self.mapper_hidden_size = mapper_hidden_size
        self.mapper_heads = mapper_heads
        self.mapper_frame_norm = mapper_frame_norm
        self.mapper_positions = mapper_positions
        self.projector_frame_norm = projector_frame_norm
        self.mapper_output_scale = mapper_output_scale
        self.stack_factor = stack_factor
        self.vib_latent_size = vib_latent_size
        self.vib_initial_log_var = vib_initial_log_var
        connector_class(connector).check_config(self)
        check_lora_rank(lora_r)
        if chunk_length_s <= 0:
            raise ValueError(
                f"chunk_length_s must be > 0 (seconds per encoder chunk), found {chunk_length_s}"
            )
        self.labels = check_label_names(labels) if labels is not None else []
        self.prompt = dict(prompt or {})
        self.max_transcript_tokens = max_transcript_tokens
        self.max_descriptor_tokens = max_descriptor_tokens
        self.classification_mode = classification_mode
        self.pooling_attention_size = pooling_attention_size
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.lora_target_modules = lora_target_modules  # a regex over the language model's module names
        self.has_lora = has_lora
        if backbone_weights not in BACKBONE_WEIGHTS:
            raise ValueError(f"backbone_weights must be one of {BACKBONE_WEIGHTS}, got {backbone_weights!r}")
        self.backbone_weights = backbone_weights
        self.chunk_length_s = chunk_length_s
        self.calibration_temperature = check_temperature(calibration_temperature)
        if prosody_hidden_size < 1:
            raise ValueError(f"prosody_hidden_size must be >= 1, found {prosody_hidden_size}")
        self.speaker_prosody = bool(speaker_prosody)
        self.prosody_hidden_size = prosody_hidden_size
        if not 0.0 <= prosody_reference_dropout < 1.0:
            raise ValueError(
                f"prosody_reference_dropout must be in [0, 1), found {prosody_reference_dropout}"
            )
        self.prosody_reference_dropout = prosody_reference_dropout
        self.audio_model_name_or_path = audio_model_name_or_path
        self.text_model_name_or_path = text_model_name_or_path
        if self.labels and "id2label" not in kwargs:
            kwargs["id2label"] = dict(enumerate(self.labels))
            kwargs["label2id"] = {label: i for i, label in enumerate(self.labels)}
        super().__init__(**kwargs)
        check_id2label(self.id2label, self.labels, self.label2id)

    @property
    def audio_token_id(self) -> int | None:
        return self.prompt.get("audio_token_id")

    @property
    def audio_hidden_size(self) -> int:
        return encoder_family(self.audio_config).hidden_size

    @property
    def max_answer_tokens(self) -> int:
        """Tokens a whole written answer may take: transcript, descriptors, and 8 for the markers and label."""
        return self.max_transcript_tokens + self.max_descriptor_tokens + 8

    @property
    def connector_class(self):
        """The connector's class (``connectors.CONNECTORS[self.connector]``)."""
        return connector_class(self.connector)

    @property
    def audio_token_groups(self) -> int:
        """How many places of the prompt take audio tokens (2 for "vae_ib": content, descriptor)."""
        return len(self.connector_class.groups)

    def audio_token_counts(self, encoder_frames: int) -> tuple[int, ...]:
        """Placeholders of each audio-token group for a clip of ``encoder_frames`` valid encoder frames."""
        return self.connector_class.token_counts(encoder_frames, self.num_queries, self.stack_factor)

    def num_audio_tokens(self, encoder_frames: int) -> int:
        """Audio tokens the connector makes from ``encoder_frames`` valid encoder frames (all groups)."""
        return sum(self.audio_token_counts(encoder_frames))


def encoder_convs(audio_config) -> list[tuple[int, int, int]]:
    """(kernel, stride, padding) of the encoder's time-downsampling convolutions."""
    return encoder_family(audio_config).convs


__all__ = ["AudioLLMConfig", "check_class_counts", "check_lora_rank", "check_loss_and_lora", "encoder_convs"]
