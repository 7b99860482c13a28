"""Putting an audio-LLM together from pretrained parts, and its backbones back into a light checkpoint.

The model classes (``modeling_audio_llm``) only map a config to modules and inputs to outputs. This
module holds what touches pretrained weights and peft:

- ``build_from_components``: a new model (and its processor) around a pretrained speech encoder and
  LLM, the connector new (``AudioLLMForConditionalGeneration.from_pretrained_components``).
- ``load_backbone_weights``: the frozen encoder and LLM weights from the places the config names
  (``audio_model_name_or_path`` / ``text_model_name_or_path``). A checkpoint saved with
  ``config.backbone_weights == "referenced"`` holds only what trains (connector, LoRA adapters, heads,
  the connector's running statistics), Ultravox-style; ``from_pretrained`` fills the rest from here.
- ``inject_lora`` / ``merge_lora``: peft LoRA adapters in the language model only (never the encoder).
- ``refuse_old_light_checkpoint``: a light checkpoint in the format before ``backbone_weights``
  (``trainable.safetensors``) is refused with what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import AutoModel, AutoModelForCausalLM

from .configuration_audio_llm import AudioLLMConfig, encoder_convs
from .connectors import connector_class
from .encoder_family import encoder_family
from .file_utils import is_local_reference

OLD_TRAINABLE_WEIGHTS = "trainable.safetensors"


# ---------------------------------------------------------------------------------------------- LoRA
def inject_lora(model) -> None:
    """LoRA adapters (peft) on the language model's attention projections, in place: parameter names
    stay those of the plain model plus ``.lora_A/B.default``, so light checkpoints keep their keys.
    peft freezes the language model's own weights; the connector (and any head) keep training."""
    from peft import LoraConfig, inject_adapter_in_model

    c = model.config
    if c.lora_r <= 0:
        raise ValueError("lora_r is 0: set lora_r > 0 in the config to add LoRA adapters")
    lora = LoraConfig(
        r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout, target_modules=c.lora_target_modules
    )
    model.language_model = inject_adapter_in_model(lora, model.language_model)
    if not any(".lora_" in name for name, _ in model.language_model.named_parameters()):
        raise ValueError(
            f"lora_target_modules={c.lora_target_modules!r} matches no module of the language model"
        )


def freeze_all_but_lora(module) -> None:
    """Only the LoRA adapters of ``module`` train (what peft sets when it injects them)."""
    for name, param in module.named_parameters():
        param.requires_grad_(".lora_" in name)


def merge_lora(model) -> None:
    """Fold the language model's LoRA adapters into its weights and remove them, in place."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    llm = model.language_model
    for name, module in list(llm.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(llm.get_submodule(parent) if parent else llm, child, module.get_base_layer())
    llm.__dict__.pop("peft_config", None)


# ------------------------------------------------------------------------------- backbone weights
def check_backbone_reference(checkpoint, key: str, reference: str | None) -> None:
    """A light checkpoint names its frozen backbones; say which one is gone, and how to fix it."""
    if not reference:
        raise ValueError(
            f"{checkpoint}/config.json has no {key}: its backbone weights are referenced, not saved, and "
            "the reference is missing"
        )
    if is_local_reference(reference) and not os.path.isdir(reference):
        raise FileNotFoundError(
            f"{checkpoint} holds only the trained weights; its frozen backbone {key}={reference!r} is not there "
            f"(moved or deleted?). Put that model back, or pass the new place: "
            f"from_pretrained({str(checkpoint)!r}, {key}='/new/folder')."
        )


def backbone_state(config: AudioLLMConfig) -> tuple[dict, dict]:
    """The encoder's and the LLM's pretrained state dicts, from the places the config names. The LLM's
    embeddings grow to the config's vocabulary, new rows (the audio placeholder) set to the mean row."""
    encoder = encoder_family(config.audio_config).weights_module(
        AutoModel.from_pretrained(config.audio_model_name_or_path)
    )
    llm = AutoModelForCausalLM.from_pretrained(config.text_model_name_or_path)
    new_rows = config.text_config.vocab_size - llm.get_input_embeddings().weight.shape[0]
    if new_rows > 0:
        grow_embeddings(llm, config.text_config.vocab_size)
    return encoder.state_dict(), llm.state_dict()


def grow_embeddings(llm, size: int) -> None:
    """Resize the LLM's token embeddings to ``size``; the new rows (never trained or generated) are
    the mean of the others, so they are the same in every process and on every reload."""
    old = llm.get_input_embeddings().weight.shape[0]
    llm.resize_token_embeddings(size)
    if size > old:
        with torch.no_grad():
            weight = llm.get_input_embeddings().weight
            weight[old:] = weight[:old].mean(0)


@torch.no_grad()
def load_backbone_weights(model, checkpoint=None) -> None:
    """Fill the model's encoder and LLM (under any LoRA adapters) from the config's references."""
    config = model.config
    for key in ("audio_model_name_or_path", "text_model_name_or_path"):
        check_backbone_reference(checkpoint or "this model", key, getattr(config, key))
    encoder_state, llm_state = backbone_state(config)
    model.audio_encoder.model.load_state_dict(encoder_state)
    own = model.language_model.state_dict()
    for key, value in llm_state.items():
        # a LoRA-wrapped projection keeps the pretrained weight under ".base_layer"
        target = key if key in own else ".base_layer.".join(key.rsplit(".", 1))
        if target not in own:
            raise ValueError(f"{config.text_model_name_or_path} has weight {key!r} that this model lacks")
        own[target].copy_(value)
    model.audio_encoder.freeze(True)


def backbone_keys(model) -> set[str]:
    """State-dict keys of the frozen pretrained backbones: not the LoRA adapters on them, and not a
    backbone weight someone unfroze to train (it is saved rather than lost)."""
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    return {
        key
        for key in model.state_dict()
        if key.startswith(("audio_encoder.", "language_model."))
        and ".lora_" not in key
        and key not in trained
    }


# ------------------------------------------------------------------------------------ building
def build_from_components(
    cls,
    audio_model,
    text_model,
    labels: list[str],
    connector: str,
    system_prompt: str | None = None,
    **config_kwargs,
):
    """``AudioLLMForConditionalGeneration.from_pretrained_components``: see there."""
    from transformers import AutoTokenizer

    from .feature_extraction_speech_emotion import SpeechEmotionFeatureExtractor
    from .offline_assets import resolve_pretrained
    from .processing_audio_llm import AudioLLMProcessor

    audio_model, text_model = resolve_pretrained(audio_model), resolve_pretrained(text_model)
    tokenizer = AutoTokenizer.from_pretrained(text_model)
    encoder = AutoModel.from_pretrained(audio_model)
    llm = AutoModelForCausalLM.from_pretrained(text_model)
    processor = AudioLLMProcessor(
        SpeechEmotionFeatureExtractor.from_encoder_pretrained(audio_model),
        tokenizer,
        labels=labels,
        connector=connector,
        num_queries=config_kwargs.get("num_queries", 32),
        stack_factor=config_kwargs.get("stack_factor", 4),
        encoder_convs=encoder_convs(encoder.config),
        system_prompt=system_prompt,
    )
    grow_embeddings(llm, len(tokenizer))
    if config_kwargs.get("mapper_output_scale", "auto") == "auto":
        # audio tokens start at the scale of the LLM's own token embeddings (their RMS)
        rms = llm.get_input_embeddings().weight.detach().float().pow(2).mean().sqrt()
        config_kwargs["mapper_output_scale"] = (
            round(float(rms), 6) if connector_class(connector).scaled_output else None
        )
    config = AudioLLMConfig(
        audio_config=encoder.config,
        text_config=llm.config,
        connector=connector,
        labels=labels,
        audio_model_name_or_path=str(audio_model),
        text_model_name_or_path=str(text_model),
        prompt=processor.prompt_config(),
        pad_token_id=tokenizer.pad_token_id,
        **config_kwargs,
    )
    model = cls(config)
    with torch.no_grad():
        model.audio_encoder.model.load_state_dict(
            encoder_family(encoder.config).weights_module(encoder).state_dict()
        )
        model.language_model.load_state_dict(llm.state_dict())
    model.audio_encoder.freeze(True)
    model.generation_config = llm.generation_config
    # the placeholder is input-only: never generate it
    model.generation_config.suppress_tokens = sorted(
        {*(model.generation_config.suppress_tokens or []), config.audio_token_id}
    )
    return model, processor


def refuse_old_light_checkpoint(path: Path) -> None:
    """A folder holding only ``trainable.safetensors`` (the light-checkpoint format before
    ``backbone_weights``) is refused: its weights would load into nothing."""
    if (path / OLD_TRAINABLE_WEIGHTS).is_file() and not any(path.glob("model*.safetensors")):
        raise ValueError(
            f"{path} holds {OLD_TRAINABLE_WEIGHTS}, the light-checkpoint format of an earlier serhub, which "
            "this version does not read. Train it again with the recipe (same command, a new --output_dir)."
        )


__all__ = [
    "backbone_keys",
    "build_from_components",
    "check_backbone_reference",
    "freeze_all_but_lora",
    "inject_lora",
    "load_backbone_weights",
    "merge_lora",
    "refuse_old_light_checkpoint",
]
