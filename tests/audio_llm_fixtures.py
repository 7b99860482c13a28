"""Tiny random audio-LLM parts for tests: a byte-level BPE tokenizer with a chat template, tiny
Whisper / WavLM encoders and tiny Llama / Qwen2 LLMs, saved as ordinary HF folders."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Wav2Vec2FeatureExtractor,
    WavLMConfig,
    WavLMModel,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperModel,
)

LABELS = ["neutral", "happy", "sad", "angry"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tokenizer(path, with_chat_template: bool = True):
    from serhub.modeling.processing_audio_llm import CUE, DEFAULT_PROMPTS

    corpus = [
        CUE,
        "Transcript:",
        "| ASR: | Emotion:",
        " Reply as: | ASR: <transcript> | Emotion: <emotion>",
        *LABELS,
    ]
    corpus += [p.format(labels=", ".join(LABELS)) for bank in DEFAULT_PROMPTS.values() for p in bank]
    corpus += ["the meeting is on thursday", "please call me back", "i love this place", "hello there"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus * 3, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    if with_chat_template:
        fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    return fast


def make_llm(path, kind: str, vocab_size: int, tie_word_embeddings: bool = False, init_std: float = 0.02):
    """A tiny random LLM. At the default ``init_std`` its next-token scores hardly depend on its input;
    0.2 gives one whose answer a few trained steps can steer (for tests that must learn)."""
    torch.manual_seed(0)
    common = dict(
        initializer_range=init_std,
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=tie_word_embeddings,
    )
    model = (
        LlamaForCausalLM(LlamaConfig(**common))
        if kind == "llama"
        else Qwen2ForCausalLM(Qwen2Config(**common))
    )
    model.save_pretrained(path)


def make_encoder(path, kind: str, init_std: float = 0.02):
    """A tiny random encoder. Whisper's frames at the default ``init_std`` are nearly its positional
    embeddings whatever the audio; 0.2 gives frames that tell clips apart (for tests that must learn)."""
    torch.manual_seed(0)
    if kind == "whisper":
        config = WhisperConfig(
            init_std=init_std,
            d_model=32,
            encoder_layers=2,
            encoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_layers=1,
            decoder_attention_heads=2,
            decoder_ffn_dim=64,
            num_mel_bins=16,
            max_source_positions=200,
            vocab_size=64,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=3,
        )
        WhisperModel(config).save_pretrained(path)
        WhisperFeatureExtractor(feature_size=16).save_pretrained(path)
    else:
        config = WavLMConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            conv_dim=(16, 16),
            conv_stride=(5, 4),
            conv_kernel=(10, 8),
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2,
            feat_extract_norm="layer",
            do_stable_layer_norm=True,
            num_buckets=16,
            max_bucket_distance=64,
        )
        WavLMModel(config).save_pretrained(path)
        Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=16000, do_normalize=True, return_attention_mask=True
        ).save_pretrained(path)


def make_parts(root, llm: str = "llama", encoder: str = "whisper"):
    """``root/llm`` (tokenizer + tiny LLM) and ``root/enc`` (tiny encoder): what ``from_pretrained_components`` takes."""
    tokenizer = make_tokenizer(root / "llm")
    make_llm(root / "llm", llm, len(tokenizer) + 1)
    make_encoder(root / "enc", encoder)
    return root


def make_qwen2_audio(path, labels=LABELS):
    """A tiny random Qwen2-Audio (transformers' own classes) with a processor: Qwen's special tokens,
    a 128-bin Whisper feature extractor and the processor's default chat template."""
    from transformers import (
        Qwen2AudioConfig,
        Qwen2AudioEncoderConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
    )

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
    corpus = [
        "system\nYou are a helpful assistant.",
        "user\nAudio 1: ",
        "assistant\n",
        f"What emotion does the speaker express? Answer with one word from: {', '.join(labels)}.",
        *labels,
    ]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus * 3, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|im_start|>"
    )
    feature_extractor = WhisperFeatureExtractor(feature_size=128, return_attention_mask=True)
    processor = Qwen2AudioProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    torch.manual_seed(0)
    config = Qwen2AudioConfig(
        audio_config=Qwen2AudioEncoderConfig(
            num_mel_bins=128,
            encoder_layers=1,
            encoder_attention_heads=2,
            encoder_ffn_dim=32,
            d_model=16,
            max_source_positions=1500,
        ),
        text_config=Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    Qwen2AudioForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)
    return path
