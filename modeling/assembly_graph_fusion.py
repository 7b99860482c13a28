"""Putting a graph-fusion classifier together from pretrained parts (folders or Hub ids): the frozen
speech encoders, text encoder and ASR model with their weights and tokenizers, the heads new
(``GraphFusionForAudioClassification.from_components``). The tokenizers are saved beside the weights,
in the sub-folders named here."""

from __future__ import annotations

from transformers import AutoModel

from .configuration_graph_fusion import GraphFusionConfig

ASR_TOKENIZER, TEXT_TOKENIZER = "asr_tokenizer", "text_tokenizer"


def _speech_parts(speech_models: list[str]) -> tuple[list, list[dict]]:
    """Each speech encoder's config and weights (Whisper contributes its encoder only)."""
    from transformers import AutoConfig

    speech_configs, speech_states = [], []
    for path in speech_models:
        config = AutoConfig.from_pretrained(path)
        speech_configs.append(config)
        model = AutoModel.from_pretrained(path)
        # Whisper contributes its encoder only
        encoder = model.get_encoder() if config.model_type == "whisper" else model
        speech_states.append(encoder.state_dict())
    return speech_configs, speech_states


def build_from_components(
    cls, speech_models: list[str], labels: list[str], text_model=None, asr_model=None, **config_kwargs
):
    """A ``cls`` around pretrained parts, frozen, in eval mode; the heads random."""
    from transformers import AutoConfig, AutoTokenizer, WhisperForConditionalGeneration

    speech_configs, speech_states = _speech_parts(speech_models)
    text_config = AutoConfig.from_pretrained(text_model) if text_model else None
    asr_config = AutoConfig.from_pretrained(asr_model) if asr_model else None
    config = GraphFusionConfig(
        speech_configs=speech_configs,
        text_config=text_config,
        asr_config=asr_config,
        labels=labels,
        component_names={
            "speech": [str(p) for p in speech_models],
            "text": str(text_model) if text_model else None,
            "asr": str(asr_model) if asr_model else None,
        },
        **config_kwargs,
    )
    model = cls(config)
    for encoder, state in zip(model.speech_encoders, speech_states):
        encoder.model.load_state_dict(state)
    if text_model:
        model.text_encoder.load_state_dict(AutoModel.from_pretrained(text_model).state_dict())
        model.tokenizers[TEXT_TOKENIZER] = AutoTokenizer.from_pretrained(text_model)
    if asr_model:
        model.asr.load_state_dict(WhisperForConditionalGeneration.from_pretrained(asr_model).state_dict())
        model.tokenizers[ASR_TOKENIZER] = AutoTokenizer.from_pretrained(asr_model)
    model.freeze_backbones()
    return model.eval()


__all__ = ["ASR_TOKENIZER", "TEXT_TOKENIZER", "build_from_components"]
