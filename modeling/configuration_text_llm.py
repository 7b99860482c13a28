"""Configuration of the text-LLM emotion classifier (THAU-UPM's text model, ABHINAYA T1/T2)."""

from __future__ import annotations

from transformers import AutoConfig, PreTrainedConfig

from .configuration_audio_llm import check_class_counts, check_loss_and_lora, text_config_from
from .configuration_speech_emotion import check_id2label, check_label_names, check_temperature

TEXT_CLASSIFICATION_MODES = ("label_logits", "pooling_head")


class TextLLMConfig(PreTrainedConfig):
    r"""A causal LLM that reads a transcript inside its chat prompt and scores the emotion labels.

    Args:
        text_config: the causal LLM (any ``AutoModelForCausalLM`` config: Llama, Gemma, Qwen2, ...).
        labels: the emotion label set (names, in class-id order).
        prompt: the tokenised prompt, so that ``pipeline("text-classification")`` needs only the
            tokenizer: ``prefix_ids`` (the chat up to the transcript), ``suffix_ids`` (after it, up to
            where the assistant's answer starts), ``label_token_ids`` (each label as the answer's first
            tokens) and ``strip_ids`` (tokens the tokenizer adds around a text, e.g. a BOS, removed
            before the transcript is put in the prompt). ``TextLLMForSequenceClassification.from_llm``
            fills it from the LLM's chat template.
        classification_mode: "label_logits" (the log-likelihood of each label as the answer: THAU's
            text model after SFT, and ABHINAYA T1 zero-shot) or "pooling_head" (attentive statistics
            pooling over the last hidden layer + a linear head: ABHINAYA T2).
        max_text_tokens: transcripts are cut to this many tokens.
        lora_r, lora_alpha, lora_dropout, lora_target_modules, has_lora: LoRA on the LLM (as in the
            audio-LLM family; ``has_lora`` makes a checkpoint rebuild its adapters before loading).
        loss_type, class_counts, focal_gamma, vs_gamma, vs_tau: the classification loss
            (``modeling/losses.py``; ABHINAYA uses vector scaling for T2).
        calibration_temperature: T > 0 the forward divides the logits by (temperature scaling,
            ``serhub/calibration.py``), so the pipeline's scores are calibrated; 1.0: as trained.
    """

    model_type = "ser_text_llm"
    sub_configs = {"text_config": AutoConfig}

    def __init__(
        self,
        text_config=None,
        labels: list[str] | None = None,
        prompt: dict | None = None,
        classification_mode: str = "label_logits",
        pooling_attention_size: int = 128,
        max_text_tokens: int = 128,
        lora_r: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.05,
        lora_target_modules: str = r".*\.(q_proj|k_proj|v_proj|o_proj)",
        has_lora: bool = False,
        loss_type: str = "ce",
        class_counts: list[int] | None = None,
        focal_gamma: float = 2.0,
        vs_gamma: float = 0.2,
        vs_tau: float = 1.0,
        text_model_name_or_path: str | None = None,
        calibration_temperature: float = 1.0,
        **kwargs,
    ):
        self.text_config = text_config_from(
            text_config if text_config is not None else {"model_type": "llama"}
        )
        if classification_mode not in TEXT_CLASSIFICATION_MODES:
            raise ValueError(
                f"classification_mode must be one of {TEXT_CLASSIFICATION_MODES}, got {classification_mode!r}"
            )
        if max_text_tokens < 1:
            raise ValueError(f"max_text_tokens must be >= 1, got {max_text_tokens}")
        check_loss_and_lora(loss_type, lora_r)
        self.labels = check_label_names(labels) if labels is not None else []
        self.prompt = dict(prompt or {})
        self.classification_mode = classification_mode
        self.pooling_attention_size = pooling_attention_size
        self.max_text_tokens = max_text_tokens
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.lora_target_modules = lora_target_modules
        self.has_lora = has_lora
        self.loss_type = loss_type
        self.class_counts = list(class_counts) if class_counts is not None else None
        self.focal_gamma = focal_gamma
        self.vs_gamma = vs_gamma
        self.vs_tau = vs_tau
        self.text_model_name_or_path = text_model_name_or_path
        self.calibration_temperature = check_temperature(calibration_temperature)
        if self.labels and "id2label" not in kwargs:
            kwargs["id2label"] = dict(enumerate(self.labels))
            kwargs["label2id"] = {label: i for i, label in enumerate(self.labels)}
        super().__init__(**kwargs)
        check_id2label(self.id2label, self.labels, self.label2id)
        check_class_counts(self.class_counts, self.num_labels)


__all__ = ["TextLLMConfig"]
