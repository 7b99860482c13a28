"""The papers' recipe configurations parse and build their models on the meta device (no download)."""

from pathlib import Path

import pytest
import torch
from serhub.modeling import AudioLLMConfig, AudioLLMForConditionalGeneration
from serhub.recipes import descriptors, emosllm, whisper_llm
from serhub.recipes.arguments import DataArguments, parse_arguments
from serhub.recipes.audio_llm_common import AudioLLMArguments, model_config_kwargs
from transformers import (
    GemmaConfig,
    HubertConfig,
    LlamaConfig,
    TrainingArguments,
    WavLMConfig,
    WhisperConfig,
)

REPO = Path(__file__).resolve().parents[1]

# Architectures of the Hub checkpoints the papers use (their published config.json values), so
# that the models can be built without downloading anything.
ARCHITECTURES = {
    "microsoft/wavlm-large": lambda: WavLMConfig(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        conv_bias=True,
    ),
    "meta-llama/Llama-3.2-3B-Instruct": lambda: LlamaConfig(
        hidden_size=3072,
        intermediate_size=8192,
        num_hidden_layers=28,
        num_attention_heads=24,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=True,
        max_position_embeddings=131072,
    ),
    "openai/whisper-large-v3": lambda: WhisperConfig(
        d_model=1280,
        encoder_layers=32,
        encoder_attention_heads=20,
        encoder_ffn_dim=5120,
        decoder_layers=32,
        decoder_attention_heads=20,
        decoder_ffn_dim=5120,
        num_mel_bins=128,
        vocab_size=51866,
    ),
    "facebook/hubert-large-ll60k": lambda: HubertConfig(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        conv_bias=True,
    ),
    "meta-llama/Llama-3.1-8B-Instruct": lambda: LlamaConfig(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        max_position_embeddings=131072,
    ),
    "google/gemma-2b-it": lambda: GemmaConfig(
        hidden_size=2048,
        intermediate_size=16384,
        num_hidden_layers=18,
        num_attention_heads=8,
        num_key_value_heads=1,
        head_dim=256,
        vocab_size=256000,
    ),
}

CASES = [
    (emosllm, "emosllm/paper_wavlm_llama3b_msp.yaml", (emosllm.CurriculumArguments,)),
    (
        whisper_llm,
        "whisper_llm/paper_whisper_large_gemma2b_emospeech.yaml",
        (whisper_llm.CrossValidationArguments,),
    ),
    (descriptors, "descriptors/paper_iemocap.yaml", (descriptors.DescriptorArguments,)),
]


@pytest.mark.parametrize("recipe,config,extra", CASES, ids=["emosllm", "whisper_llm", "descriptors"])
def test_paper_config_builds_on_meta(recipe, config, extra):
    path = REPO / "recipes/configs" / config
    args = parse_arguments(
        (AudioLLMArguments, DataArguments, *extra, TrainingArguments),
        path,
        ["--config", str(path), "--use_cpu", "true", "--bf16", "false"],
    )
    model_args = args[0]
    config = AudioLLMConfig(
        audio_config=ARCHITECTURES[model_args.audio_model_name_or_path](),
        text_config=ARCHITECTURES[model_args.text_model_name_or_path](),
        labels=["neutral", "happy", "sad", "angry"],
        prompt={"audio_token_id": 0},
        **model_config_kwargs(model_args),
    )
    with torch.device("meta"):
        model = AudioLLMForConditionalGeneration(config)
    if model_args.lora_r > 0:
        model.enable_lora()
    else:
        model.freeze_language_model()
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    total = sum(p.numel() for p in model.parameters())
    connector = sum(v for n, v in trainable.items() if "connector" in n)
    lora = sum(v for n, v in trainable.items() if "lora_" in n)
    print(
        f"{config.connector}: trainable {sum(trainable.values()) / 1e6:.1f} M of {total / 1e9:.2f} B (connector {connector / 1e6:.1f} M, LoRA {lora / 1e6:.1f} M)"
    )
    assert sum(trainable.values()) == connector + lora  # nothing else trains
    assert not any("audio_encoder" in n for n in trainable)
    if recipe is emosllm:
        assert lora > 0 and total > 3e9  # WavLM-Large + Llama-3.2-3B
    elif recipe is descriptors:
        assert lora > 0 and total > 8e9  # HuBERT-large + Llama-3.1-8B
        assert {n.split(".")[1] for n in trainable if n.startswith("connector.")} == {"content", "descriptor"}
    else:
        assert lora == 0 and connector > 0 and total > 2e9


SHIPPED_CONFIGS = sorted((REPO / "recipes/configs").glob("*/*.yaml"))


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=[f"{p.parent.name}/{p.stem}" for p in SHIPPED_CONFIGS])
def test_every_shipped_config_parses_with_its_recipe(path):
    """`--config recipes/configs/<recipe>/<name>.yaml` is accepted by that recipe's arguments (a key
    the libraries renamed, e.g. transformers 5's warmup_ratio -> warmup_steps, would stop a user)."""
    import importlib

    recipe = importlib.import_module(f"serhub.recipes.{path.parent.name}")
    parsed = parse_arguments(
        recipe.ARGUMENTS, path, ["--config", str(path), "--use_cpu", "true", "--bf16", "false"]
    )
    assert any(isinstance(a, TrainingArguments) and a.output_dir for a in parsed)  # SFTConfig is one too
