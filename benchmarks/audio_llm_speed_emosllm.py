"""audio_llm_speed's section 4: the EmoSLLM configuration (WavLM Large + Llama-3.2-3B-Instruct, query
pooling, LoRA r=8 on q/k/v/o) built on the meta device, so its trainable parameters are counted without
its weights, next to the paper's figure."""

from __future__ import annotations

import torch
from audio_llm_speed_measure import count_trainable
from serhub.modeling import AudioLLMConfig, AudioLLMForConditionalGeneration
from transformers import LlamaConfig, WavLMConfig

EMOSLLM_TRAINABLE = 12.5e6  # EmoSLLM (arXiv:2508.14130): trainable parameters reported in the paper

# EmoSLLM's parts. WavLM Large (microsoft/wavlm-large): the other fields keep WavLMConfig's defaults,
# which are Large's too (7 conv layers of 512, 320 relative-position buckets). Llama-3.2-3B-Instruct:
# head_dim = 3072 / 24 = 128 and rms_norm_eps 1e-5 by default; the llama3 RoPE scaling is that of the
# released config (it changes no parameter count).
WAVLM_LARGE = dict(
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    intermediate_size=4096,
    feat_extract_norm="layer",
    do_stable_layer_norm=True,
    conv_bias=True,
)
LLAMA_32_3B = dict(
    hidden_size=3072,
    intermediate_size=8192,
    num_hidden_layers=28,
    num_attention_heads=24,
    num_key_value_heads=8,
    vocab_size=128256,
    tie_word_embeddings=True,
    max_position_embeddings=131072,
    rope_parameters=dict(
        rope_type="llama3",
        rope_theta=500000.0,
        factor=32.0,
        low_freq_factor=1.0,
        high_freq_factor=4.0,
        original_max_position_embeddings=8192,
    ),
)
EMOSLLM = dict(connector="query_pooling", num_queries=32, mapper_layers=2, prompt={"audio_token_id": 128256})
EMOSLLM_VARIANTS = {
    "as briefed (mapper width = WavLM's 1024, LoRA r=8)": dict(lora_r=8, lora_alpha=16),
    "mapper_hidden_size=768 (the width EmoSLLM states)": dict(
        mapper_hidden_size=768, lora_r=8, lora_alpha=16
    ),
    "mapper_hidden_size=512": dict(mapper_hidden_size=512, lora_r=8, lora_alpha=16),
    "lora_r=16": dict(lora_r=16, lora_alpha=32),
}


def count_emosllm() -> list[dict]:
    rows = []
    for name, extra in EMOSLLM_VARIANTS.items():
        config = AudioLLMConfig(
            audio_config=WavLMConfig(**WAVLM_LARGE),
            text_config=LlamaConfig(**LLAMA_32_3B),
            **EMOSLLM,
            **extra,
        )
        row = dict(variant=name, **extra)
        try:
            with torch.device("meta"):
                model = AudioLLMForConditionalGeneration(config)
            encoder = sum(p.numel() for p in model.audio_encoder.parameters())
            llm = sum(p.numel() for p in model.language_model.parameters())
            connector_parts = {
                part: sum(p.numel() for p in module.parameters())
                if isinstance(module, torch.nn.Module)
                else 0
                for part, module in model.connector.named_children()
            }
            connector_parts["queries"] = model.connector.queries.numel()
            model.enable_lora()
            counts = count_trainable(model)
            off_meta = [n for n, p in model.named_parameters() if p.device.type != "meta"]
            row.update(
                trainable=counts["total"],
                connector=counts["connector"],
                lora=counts["lora"],
                other_trainable=counts["other"],
                ratio_to_emosllm=round(counts["total"] / EMOSLLM_TRAINABLE, 2),
                connector_parts=connector_parts,
                encoder_parameters=encoder,
                llm_parameters=llm,
                parameters_not_on_meta=off_meta,
            )
            del model
        except Exception as err:  # report, don't hide: the brief asks what fails on meta
            row["error"] = f"{type(err).__name__}: {err}"
        rows.append(row)
    return rows
