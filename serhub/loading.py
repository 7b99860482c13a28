"""Which models serhub's tools load, and how: a serhub model or a transformers audio classifier, by
folder or Hub id, run with the classes installed with serhub, never code that came with the model
(``serhub.modeling.remote_code.check_model``); a model whose classifier head would be new is refused."""

from __future__ import annotations

import numpy as np

from serhub.audio_io import SAMPLING_RATE
from serhub.modeling.remote_code import SERHUB_MODEL_TYPES, check_model, trust_remote_code_for


def load_classifier(model):
    """``pipeline("audio-classification")`` on a serhub model or a transformers audio classifier (a
    folder or Hub id). The code that runs is serhub's and transformers', never files in the folder
    (:func:`~.remote_code.check_model`); a model whose classifier head would be new is refused."""
    from transformers import pipeline

    config = check_model(model)
    _check_classifier_config(model, config)
    return pipeline("audio-classification", model=str(model), trust_remote_code=trust_remote_code_for(config))


def _check_classifier_config(model, config: dict) -> None:
    """Refuse a model that is not an audio classifier: its head would be drawn at random."""
    if config.get("model_type") in SERHUB_MODEL_TYPES:
        if config["model_type"] == "ser_text_llm":
            raise ValueError(f"{model} is a text classifier (ser_text_llm): it reads transcripts, not audio")
        return
    from transformers.models.auto.modeling_auto import MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES

    architectures = config.get("architectures") or []
    if config.get("model_type") not in MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES or not any(
        a.endswith(("ForAudioClassification", "ForSequenceClassification")) for a in architectures
    ):
        raise ValueError(
            f"{model} is not an audio classifier (model_type {config.get('model_type')!r}, architectures "
            f"{architectures or 'none'}): its classification head would be new and random. Pass a "
            "serhub model or a model trained for audio classification."
        )


def dimensional_values(classifier, clips: list[np.ndarray]) -> list[list[float]]:
    """The dimensional head's predictions (arousal, valence, ... as ``config.dimensions`` names them)
    for 16 kHz clips, through the pipeline's own feature extractor and model, one batch."""
    import torch

    inputs = classifier.feature_extractor(
        list(clips), sampling_rate=SAMPLING_RATE, return_tensors="pt", padding=True
    )
    with torch.no_grad():
        out = classifier.model(**{k: v.to(classifier.model.device) for k, v in inputs.items()})
    return out.dimensional.float().cpu().tolist()


def load_answer_writer(model, max_new_tokens: int = 48):
    """For an audio-LLM saved to write answers (an ``AudioLLMForConditionalGeneration``, as EmoSLLM
    saves it): a function from a list of 16 kHz clips to their answers, "| ASR: <t> | Emotion: <label>"
    (greedy, the assistant turn started with "| ASR:" as in training). None for any other model (a
    classifier, or a Whisper-LLM whose frozen LLM was never taught to answer)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor

    from serhub.modeling.prompting_audio_llm import ASR_PREFIX

    checked = check_model(model)
    trust = trust_remote_code_for(checked)
    config = AutoConfig.from_pretrained(str(model), trust_remote_code=trust)
    if config.model_type != "ser_audio_llm" or "AudioLLMForConditionalGeneration" not in (
        config.architectures or []
    ):
        return None
    processor = AutoProcessor.from_pretrained(str(model), trust_remote_code=trust)
    llm = AutoModelForCausalLM.from_pretrained(str(model), trust_remote_code=trust).eval()

    def write(clips: list[np.ndarray]) -> list[str]:
        inputs = processor(
            audio=list(clips), task="asr+ser", prompt_index=0, shuffle_labels=False, answer_prefix=ASR_PREFIX
        )
        with torch.no_grad():
            out = llm.generate(**inputs.to(llm.device), max_new_tokens=max_new_tokens, do_sample=False)
        texts = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return [f"{ASR_PREFIX} {t.strip()}" for t in texts]

    return write


__all__ = ["dimensional_values", "load_answer_writer", "load_classifier"]
