"""The audio-LLMs must learn from the audio: a toy task where the class is which of three tones
is played, on tiny random encoder/LLM pairs, for every connector, with the LM loss on the label word
(EmoSLLM's objective). A connector that collapses (the same audio tokens for every clip), or a model
that ignores its audio tokens, stays at chance here.

The parts are initialised with a standard deviation of 0.2, not transformers' 0.02: at 0.02 the tiny
random encoder's frames are nearly its positional embeddings whatever the audio, and the tiny LLM's
next-token scores hardly depend on its input, so no connector could be told apart from a broken one."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from serhub.modeling import AudioLLMForConditionalGeneration
from serhub.modeling.connectors import CONNECTORS

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import LABELS, make_encoder, make_llm, make_tokenizer  # noqa: E402

TONES_HZ = (250.0, 1000.0, 3500.0)  # class i = tone i; far apart in the mel bins
CLASSES = LABELS[: len(TONES_HZ)]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("learning_parts")
    tokenizer = make_tokenizer(root / "llm")
    make_llm(root / "llm", "llama", len(tokenizer) + 1, init_std=0.2)
    make_encoder(root / "enc", "whisper", init_std=0.2)
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


def train_and_score(
    parts, connector: str, steps: int = 60, lr: float = 3e-3, lora_lr: float = 1e-2, batch_size: int = 12
):
    torch.manual_seed(0)
    kwargs = dict(num_queries=4, mapper_heads=2, stack_factor=4)
    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        parts / "enc", parts / "llm", CLASSES, connector=connector, lora_r=4, lora_alpha=8, **kwargs
    )
    peft_model = model.enable_lora()
    train_clips, train_labels = tone_clips(16, seed=0)
    test_clips, test_labels = tone_clips(8, seed=1)
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in trained if ".lora_" not in n], "lr": lr},
            {"params": [p for n, p in trained if ".lora_" in n], "lr": lora_lr},  # as the recipes' LoRA rate
        ]
    )
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


@pytest.mark.parametrize("connector", sorted(CONNECTORS))
def test_connector_learns_which_tone(parts, connector):
    accuracy, stats = train_and_score(parts, connector)
    # chance is 1/3; the audio decides the class, so a model that reads it gets nearly all right
    assert accuracy >= 0.8, f"{connector}: test accuracy {accuracy:.2f} after training (chance 0.33); {stats}"
    assert stats["token_diversity"] > 0.05, f"{connector}: audio tokens near-identical between clips: {stats}"


def test_a_model_without_its_audio_stays_at_chance(parts, monkeypatch):
    """The control: the same training with the audio tokens zeroed cannot beat chance, so the
    accuracy above comes from the audio, not from the prompt or the label order."""
    from serhub.modeling.trunk_audio_llm import AudioLLMModel

    connect = AudioLLMModel.connect

    def silent(self, *args, **kwargs):
        tokens, mask, attend = connect(self, *args, **kwargs)
        return torch.zeros_like(tokens), mask, attend

    monkeypatch.setattr(AudioLLMModel, "connect", silent)
    accuracy, _ = train_and_score(parts, "query_pooling")
    assert accuracy <= 0.5, f"without audio the model scored {accuracy:.2f} (chance 0.33)"
