"""Configuration of serhub's audio-LLMs: speech encoder -> connector -> causal LLM (EmoSLLM, THAU-UPM
Whisper-LLM, ABHINAYA's LLM + attentive pooling heads)."""

from __future__ import annotations

from transformers import AutoConfig, PreTrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from .configuration_speech_emotion import audio_config_from
from .layers import FRAME_NORMS

CONNECTORS = ("linear", "query_pooling")
CLASSIFICATION_MODES = ("label_logits", "transcript_conditioned", "pooling_head")
AUDIO_TOKEN = "<|audio|>"


def text_config_from(value) -> PreTrainedConfig:
    if isinstance(value, PreTrainedConfig):
        return value
    if isinstance(value, dict):
        if "model_type" not in value:
            raise ValueError("text_config needs a 'model_type' key (e.g. 'llama', 'gemma', 'qwen2')")
        value = dict(value)
        return CONFIG_MAPPING[value.pop("model_type")](**value)
    raise ValueError(f"text_config must be a config or a dict, got {type(value).__name__}")


class AudioLLMConfig(PreTrainedConfig):
    r"""Args:
    audio_config: the speech encoder (WavLM, HuBERT, wav2vec2, data2vec-audio or Whisper); frozen.
    text_config: the causal LLM (any ``AutoModelForCausalLM`` config: Llama, Gemma, Qwen2, ...).
    connector: "query_pooling" (EmoSLLM's QPMapper: ``num_queries`` learnable queries through a
        ``mapper_layers``-layer transformer encoder -> that many audio tokens per clip) or "linear"
        (THAU's projector: ``stack_factor`` consecutive frames stacked, then one linear layer ->
        ceil(frames / stack_factor) audio tokens).
    mapper_frame_norm: how the query-pooling mapper normalises the encoder's frames: "global"
        (per-channel standardisation with statistics gathered over the training frames, the default),
        "layer" (LayerNorm per frame) or "none" (the paper's raw frames).
    mapper_positions: add sinusoidal time positions to the frames (default True).
    mapper_output_scale: the audio tokens are RMS-normalised with a learned gain starting at this
        value; ``from_pretrained_components`` sets it to the LLM's input-embedding RMS. None: no
        output normalisation (the paper's plain linear output). See ``layers.QueryPoolingMapper``.
    audio_token_id: id of the placeholder token that the processor repeats once per audio token.
    labels: the emotion label set (names, in class-id order).
    label_token_ids: token ids of each label as the answer right after the assistant turn starts
        ("label" answers) -- filled by the processor / ``from_pretrained_components``.
    emotion_label_token_ids: token ids of each label after "| Emotion:" (joint ASR+SER answers).
    prompt_input_ids: a tokenised classification prompt with one audio placeholder; lets
        ``pipeline("audio-classification")`` run with only the feature extractor.
    joint_prompt_input_ids: the same for the joint task, ending with the answer prefix "| ASR:"
        (the "transcript_conditioned" mode; with a processor, call it with task="asr+ser",
        answer_prefix="| ASR:").
    emotion_prefix_ids: tokens of " | Emotion:" (appended after a generated transcript).
    transcript_stop_ids: tokens that end a transcript in "| ASR: <t> | Emotion:" answers.
    classification_mode: how ``AudioLLMForAudioClassification`` scores labels: "label_logits"
        (next-token log-likelihood of each label, THAU), "transcript_conditioned" (write the
        transcript first, then score the labels, EmoSLLM) or "pooling_head" (attentive statistics
        pooling over the LLM's last hidden states + linear head, ABHINAYA T2/S2).
    lora_r, lora_alpha, lora_dropout, lora_target_modules: LoRA on the LLM only (a regex over module
        names, so the encoder's q_proj/v_proj are never adapted). lora_r=0: no LoRA.
    loss_type, class_counts, ...: the classification loss (see ``modeling/losses.py``).
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
        mapper_output_scale: float | None = None,
        stack_factor: int = 4,
        audio_token_id: int | None = None,
        labels: list[str] | None = None,
        label_token_ids: list[list[int]] | None = None,
        emotion_label_token_ids: list[list[int]] | None = None,
        prompt_input_ids: list[int] | None = None,
        joint_prompt_input_ids: list[int] | None = None,
        emotion_prefix_ids: list[int] | None = None,
        transcript_stop_ids: list[int] | None = None,
        max_transcript_tokens: int = 48,
        classification_mode: str = "label_logits",
        pooling_attention_size: int = 128,
        lora_r: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.05,
        lora_target_modules: str = r".*language_model\..*\.(q_proj|k_proj|v_proj|o_proj)",
        loss_type: str = "ce",
        class_counts: list[int] | None = None,
        focal_gamma: float = 2.0,
        vs_gamma: float = 0.2,
        vs_tau: float = 1.0,
        chunk_length_s: float = 30.0,
        audio_model_name_or_path: str | None = None,
        text_model_name_or_path: str | None = None,
        **kwargs,
    ):
        self.audio_config = audio_config_from(
            audio_config if audio_config is not None else {"model_type": "whisper"}
        )
        self.text_config = text_config_from(
            text_config if text_config is not None else {"model_type": "llama"}
        )
        if connector not in CONNECTORS:
            raise ValueError(f"connector must be one of {CONNECTORS}, got {connector!r}")
        if classification_mode not in CLASSIFICATION_MODES:
            raise ValueError(
                f"classification_mode must be one of {CLASSIFICATION_MODES}, got {classification_mode!r}"
            )
        if connector == "query_pooling" and num_queries < 1:
            raise ValueError(f"num_queries must be >= 1, got {num_queries}")
        if mapper_frame_norm not in FRAME_NORMS:
            raise ValueError(f"mapper_frame_norm must be one of {FRAME_NORMS}, got {mapper_frame_norm!r}")
        if mapper_output_scale is not None and mapper_output_scale <= 0:
            raise ValueError(f"mapper_output_scale must be > 0 (or None), got {mapper_output_scale}")
        if connector == "linear" and stack_factor < 1:
            raise ValueError(f"stack_factor must be >= 1, got {stack_factor}")
        self.connector = connector
        self.num_queries = num_queries
        self.mapper_layers = mapper_layers
        self.mapper_hidden_size = mapper_hidden_size
        self.mapper_heads = mapper_heads
        self.mapper_frame_norm = mapper_frame_norm
        self.mapper_positions = mapper_positions
        self.mapper_output_scale = mapper_output_scale
        self.stack_factor = stack_factor
        self.audio_token_id = audio_token_id
        self.labels = list(labels) if labels else []
        self.label_token_ids = label_token_ids
        self.emotion_label_token_ids = emotion_label_token_ids
        self.prompt_input_ids = prompt_input_ids
        self.joint_prompt_input_ids = joint_prompt_input_ids
        self.emotion_prefix_ids = emotion_prefix_ids
        self.transcript_stop_ids = transcript_stop_ids
        self.max_transcript_tokens = max_transcript_tokens
        self.classification_mode = classification_mode
        self.pooling_attention_size = pooling_attention_size
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.lora_target_modules = lora_target_modules
        self.loss_type = loss_type
        self.class_counts = list(class_counts) if class_counts is not None else None
        self.focal_gamma = focal_gamma
        self.vs_gamma = vs_gamma
        self.vs_tau = vs_tau
        self.chunk_length_s = chunk_length_s
        self.audio_model_name_or_path = audio_model_name_or_path
        self.text_model_name_or_path = text_model_name_or_path
        if self.labels and "id2label" not in kwargs:
            kwargs["id2label"] = dict(enumerate(self.labels))
            kwargs["label2id"] = {label: i for i, label in enumerate(self.labels)}
        super().__init__(**kwargs)

    @property
    def audio_hidden_size(self) -> int:
        return (
            self.audio_config.d_model
            if self.audio_config.model_type == "whisper"
            else self.audio_config.hidden_size
        )

    def num_audio_tokens(self, encoder_frames: int) -> int:
        """Audio tokens the connector makes from ``encoder_frames`` valid encoder frames."""
        if self.connector == "query_pooling":
            return self.num_queries
        return -(-encoder_frames // self.stack_factor)


def encoder_convs(audio_config) -> list[tuple[int, int, int]]:
    """(kernel, stride, padding) of the encoder's time-downsampling convolutions."""
    if audio_config.model_type == "whisper":
        return [(3, 1, 1), (3, 2, 1)]
    return [(k, s, 0) for k, s in zip(audio_config.conv_kernel, audio_config.conv_stride)]


def encoder_output_frames(input_frames: int, convs) -> int:
    """Encoder frames made from ``input_frames`` feature frames (mel frames or samples)."""
    n = input_frames
    for kernel, stride, padding in convs:
        n = (n + 2 * padding - kernel) // stride + 1
    return max(n, 0)


def expand_audio_placeholders(input_ids: list[int], counts: list[int], audio_token_id: int) -> list[int]:
    """Repeat the i-th audio placeholder of ``input_ids`` ``counts[i]`` times (one per audio token)."""
    positions = [i for i, t in enumerate(input_ids) if t == audio_token_id]
    if len(positions) != len(counts):
        raise ValueError(
            f"the prompt has {len(positions)} audio placeholders but {len(counts)} audio clips were given; "
            "put exactly one placeholder per clip in the prompt."
        )
    out, start = [], 0
    for position, count in zip(positions, counts):
        out += input_ids[start:position] + [audio_token_id] * count
        start = position + 1
    return out + input_ids[start:]


__all__ = ["AudioLLMConfig", "encoder_convs", "encoder_output_frames", "expand_audio_placeholders"]
