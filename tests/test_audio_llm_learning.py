"""The audio-LLMs must learn from the audio: a toy task where the class is which of three tones
is played, on tiny random encoder/LLM pairs, for both connectors. A connector that collapses
(the same audio tokens for every clip) stays at chance here."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from serhub.modeling import AudioLLMForConditionalGeneration

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import LABELS, make_encoder, make_llm, make_tokenizer  # noqa: E402

TONES_HZ = (250.0, 1000.0, 3500.0)  # class i = tone i; far apart in the mel bins
CLASSES = LABELS[: len(TONES_HZ)]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("learning_parts")
    tokenizer = make_tokenizer(root / "llm")
    make_llm(root / "llm", "llama", len(tokenizer) + 1)
    make_encoder(root / "enc", "whisper")
    return root


def tone_clips(n_per_class: int, seed: int):
    """Clips of random length (0.3-0.6 s), phase and loudness, with noise; returns (clips, labels)."""
    rng = np.random.default_rng(seed)
    clips, labels = [], []
    for _ in range(n_per_class):
        for label, hz in enumerate(TONES_HZ):
            t = np.arange(int(rng.uniform(0.3, 0.6) * 16000)) / 16000
            wave = rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * hz * t + rng.uniform(0, 2 * np.pi))
            clips.append((wave + 0.02 * rng.standard_normal(t.size)).astype(np.float32))
            labels.append(label)
    order = rng.permutation(len(clips))
    return [clips[i] for i in order], [labels[i] for i in order]


def train_and_score(parts, connector: str, steps: int = 40, lr: float = 3e-3, batch_size: int = 12):
    torch.manual_seed(0)
    kwargs = dict(num_queries=4, mapper_heads=2) if connector == "query_pooling" else dict(stack_factor=4)
    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        parts / "enc", parts / "llm", CLASSES, connector=connector, lora_r=4, lora_alpha=8, **kwargs
    )
    peft_model = model.enable_lora()
    train_clips, train_labels = tone_clips(16, seed=0)
    test_clips, test_labels = tone_clips(8, seed=1)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    peft_model.train()
    rng = np.random.default_rng(0)
    for _ in range(steps):
        idx = rng.choice(len(train_clips), batch_size, replace=False)
        batch = processor(
            audio=[train_clips[i] for i in idx],
            task="ser",
            labels=[CLASSES[train_labels[i]] for i in idx],
            sampling_rate=16000,
            seed=int(rng.integers(1 << 30)),
        )
        peft_model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    classifier = model.as_classifier("label_logits")
    with torch.no_grad():
        batch = processor(
            audio=test_clips, task="ser", prompt_index=0, shuffle_labels=False, sampling_rate=16000
        )
        predictions = classifier(**batch).logits.argmax(-1).tolist()
        features = processor.feature_extractor(test_clips, sampling_rate=16000, return_tensors="pt")
        stats = model.audio_token_statistics(
            audio=features["input_features"], audio_attention_mask=features["attention_mask"]
        )
    accuracy = float(np.mean(np.asarray(predictions) == np.asarray(test_labels)))
    return accuracy, stats


# Known failure, kept strict so that it turns red the day it passes: after 40-150 steps at learning
# rates 3e-4..1e-2, both connectors on these tiny random parts stay at chance (the query-pooling
# tokens keep a diversity of 0.4-0.8 at lr <= 1e-3 but the LoRA LLM does not read them; at higher
# rates the tokens collapse). See the EmoSLLM learning issue for the figures.
@pytest.mark.xfail(strict=True, reason="the audio-LLMs do not yet learn the tone task in 40 steps")
@pytest.mark.parametrize("connector", ["query_pooling", "linear"])
def test_connector_learns_which_tone(parts, connector):
    accuracy, stats = train_and_score(parts, connector)
    # chance is 1/3; the audio decides the class, so a model that reads it gets nearly all right
    assert accuracy >= 0.8, f"{connector}: test accuracy {accuracy:.2f} after training (chance 0.33); {stats}"
    assert stats["token_diversity"] > 0.05, f"{connector}: audio tokens near-identical between clips: {stats}"
