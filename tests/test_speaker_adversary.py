"""The speech classifier's speaker adversary (``--speaker_adversary_weight``): a gradient reversal
into the head's hidden layer, training only."""

import json
import os
import sys

import numpy as np
import pytest
import torch
from serhub.modeling import SpeechEmotionConfig, SpeechEmotionForAudioClassification
from serhub.modeling.layers import SpeakerAdversary
from serhub.recipes import ssl_classifier
from serhub.recipes.ssl_classifier_data import (
    CachedEncoderCollator,
    add_speaker_ids,
    training_speakers,
)
from transformers import WhisperConfig

sys.path.insert(0, os.path.dirname(__file__))
from test_recipe_ssl_classifier import recipe_args, tiny_dataset, tiny_encoder  # noqa: E402, F401

LABELS = ["neutral", "happy", "sad"]


def tiny_config(**kwargs) -> SpeechEmotionConfig:
    whisper = WhisperConfig(
        d_model=16,
        encoder_layers=1,
        encoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_layers=1,
        decoder_attention_heads=2,
        decoder_ffn_dim=32,
        num_mel_bins=16,
        vocab_size=64,
        pad_token_id=0,
    )
    return SpeechEmotionConfig(
        audio_config=whisper,
        id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)},
        head_hidden_size=32,
        head_dropout=0.0,
        **kwargs,
    )


def test_the_adversary_learns_the_speaker_and_the_head_only_the_confusion():
    """The naming loss trains the adversary alone; the confusion loss reaches the hidden layer alone,
    and is 0 when the adversary's guess is uniform."""
    torch.manual_seed(0)
    adversary = SpeakerAdversary(8, 8, 3)
    hidden = torch.randn(5, 8, requires_grad=True)
    speakers = torch.tensor([0, 1, 2, 0, 1])
    naming_only = adversary(hidden, speakers, 0.0)
    naming_only.backward()
    assert hidden.grad is None or torch.count_nonzero(hidden.grad) == 0
    assert adversary.classifier.out_proj.weight.grad.abs().sum() > 0
    adversary.zero_grad()
    confusion = adversary(hidden, speakers, 1.0) - adversary(hidden, speakers, 0.0)  # the naming terms cancel
    confusion.backward()
    assert hidden.grad.abs().sum() > 0
    assert adversary.classifier.out_proj.weight.grad.abs().max() < 1e-7
    with torch.no_grad():
        adversary.classifier.out_proj.weight.zero_()
        adversary.classifier.out_proj.bias.zero_()
        assert torch.isclose(
            adversary(hidden, speakers, 1.0) - adversary(hidden, speakers, 0.0), torch.tensor(0.0), atol=1e-6
        )


def test_adversary_loss_skips_clips_without_a_training_speaker():
    adversary = SpeakerAdversary(8, 8, 3)
    hidden = torch.randn(4, 8, requires_grad=True)
    none = adversary(hidden, torch.full((4,), -100), 1.0)
    assert none.item() == 0.0
    none.backward()  # still part of the graph: a batch of unseen speakers does not break training
    some = adversary(hidden, torch.tensor([0, -100, 2, -100]), 1.0)
    alone = adversary(hidden[[0, 2]], torch.tensor([0, 2]), 1.0)
    assert torch.allclose(some, alone)


def states(batch: int, frames: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 2, frames, 16, generator=g), torch.ones(batch, frames, dtype=torch.long)


def test_adversary_changes_the_training_loss_only_and_inference_not_at_all(tmp_path):
    torch.manual_seed(0)
    model = SpeechEmotionForAudioClassification(tiny_config(speaker_adversary_speakers=3))
    h, mask = states(4)
    labels, speakers = torch.tensor([0, 1, 2, 0]), torch.tensor([0, 1, 2, -100])
    model.train()
    plain = model(encoder_hidden_states=h, encoder_attention_mask=mask, labels=labels)
    with_adv = model(
        encoder_hidden_states=h, encoder_attention_mask=mask, labels=labels, speaker_ids=speakers
    )
    assert torch.equal(plain.logits, with_adv.logits)
    assert with_adv.loss > plain.loss + 0.5  # ~ln(3) of speaker cross-entropy added
    model.eval()
    evaluated = model(
        encoder_hidden_states=h, encoder_attention_mask=mask, labels=labels, speaker_ids=speakers
    )
    assert torch.allclose(
        evaluated.loss, model(encoder_hidden_states=h, encoder_attention_mask=mask, labels=labels).loss
    )

    # saved and reloaded: the same scores; the config keeps the adversary's size and scale
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["speaker_adversary_speakers"] == 3 and config["speaker_adversary_weight"] == 0.5
    reloaded = SpeechEmotionForAudioClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(
            reloaded(encoder_hidden_states=h, encoder_attention_mask=mask).logits,
            model(encoder_hidden_states=h, encoder_attention_mask=mask).logits,
            atol=1e-6,
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"speaker_adversary_speakers": -1}, "number of training speakers"),
        ({"speaker_adversary_speakers": 2.5}, "number of training speakers"),
        ({"speaker_adversary_speakers": 4, "speaker_adversary_weight": 0.0}, "must be > 0"),
    ],
)
def test_bad_adversary_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**kwargs)


def head_hidden(model, h, mask) -> np.ndarray:
    with torch.no_grad():
        pooled = model.pooled_representation(encoder_hidden_states=h, encoder_attention_mask=mask)
        return model.classifier.hidden(pooled).numpy()


def test_the_adversary_hides_the_speaker_from_the_head():
    """Frames carry the emotion in one channel and the speaker strongly in others. Trained alone, a
    large share of the head's hidden-layer variance lies between the speakers; trained against the
    adversary, less than half of that share, and the emotion is read as well."""
    g = torch.Generator().manual_seed(1)
    num_speakers, per_speaker, frames = 6, 40, 5
    voices = 3.0 * torch.randn(num_speakers, 16, generator=g)
    voices[:, 0] = 0.0
    speakers = torch.arange(num_speakers).repeat_interleave(per_speaker)
    labels = torch.randint(0, 3, (len(speakers),), generator=g)
    h = voices[speakers][:, None, None, :] + 0.3 * torch.randn(len(speakers), 2, frames, 16, generator=g)
    h[..., 0] += 2.0 * (labels.float() - 1.0)[:, None, None]
    mask = torch.ones(len(speakers), frames, dtype=torch.long)
    train, probe = torch.arange(len(speakers)) % 2 == 0, torch.arange(len(speakers)) % 2 == 1

    def trained(adversary: bool):
        torch.manual_seed(0)
        config = tiny_config(
            speaker_adversary_speakers=num_speakers if adversary else 0, speaker_adversary_weight=1.0
        )
        model = SpeechEmotionForAudioClassification(config).train()
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
        for _ in range(300):
            loss = model(
                encoder_hidden_states=h[train],
                encoder_attention_mask=mask[train],
                labels=labels[train],
                speaker_ids=speakers[train] if adversary else None,
            ).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return model.eval()

    scores = {}
    for adversary in (False, True):
        model = trained(adversary)
        hidden = head_hidden(model, h[probe], mask[probe])
        with torch.no_grad():
            emotion = model(encoder_hidden_states=h[probe], encoder_attention_mask=mask[probe]).logits.argmax(
                -1
            )
        voice = speakers[probe].numpy()
        between = np.stack([hidden[voice == s].mean(0) for s in range(num_speakers)]).var(0).sum()
        scores[adversary] = ((emotion == labels[probe]).float().mean().item(), between / hidden.var(0).sum())
    # without the adversary the voices spread the hidden layer; against it far less
    assert scores[True][1] < 0.5 * scores[False][1]
    assert scores[True][0] > 0.9 and scores[False][0] > 0.9  # the emotion is read either way


def test_speaker_ids_index_training_speakers_and_mark_the_others():
    import datasets

    train = datasets.Dataset.from_dict({"speaker_id": ["b", "a", "b"], "x": [1, 2, 3]})
    test = datasets.Dataset.from_dict({"speaker_id": ["c", "a"], "x": [4, 5]})
    speakers = training_speakers(train, "speaker_id")
    assert speakers == ["a", "b"]
    out = add_speaker_ids(
        {"train": train, "test": test}, {"train": train, "test": test}, speakers, "speaker_id"
    )
    assert out["train"]["speaker_ids"] == [1, 0, 1] and out["test"]["speaker_ids"] == [-100, 0]
    rows = [
        {"encoder_hidden_states": np.zeros((3, 2, 4), np.float16), "labels": 0, "speaker_ids": 1},
        {"encoder_hidden_states": np.zeros((2, 2, 4), np.float16), "labels": 1, "speaker_ids": -100},
    ]
    batch = CachedEncoderCollator()(rows)
    assert batch["speaker_ids"].tolist() == [1, -100]
    assert "speaker_ids" not in CachedEncoderCollator()(
        [{k: v for k, v in r.items() if k != "speaker_ids"} for r in rows]
    )


def test_recipe_trains_the_adversary_and_the_saved_model_scores_as_usual(
    tiny_encoder,  # noqa: F811
    tiny_dataset,  # noqa: F811
    tmp_path,
):
    from transformers import pipeline

    out = tmp_path / "run"
    ssl_classifier.main(
        recipe_args(tiny_encoder, tiny_dataset, out, epochs=1) + ["--speaker_adversary_weight", "0.7"]
    )
    config = json.loads((out / "config.json").read_text())
    import datasets

    train = datasets.load_from_disk(tiny_dataset)["train"]
    assert config["speaker_adversary_speakers"] == len(set(train["speaker_id"]))
    assert config["speaker_adversary_weight"] == 0.7
    assert "speaker adversary" in (out / "README.md").read_text()
    classifier = pipeline("audio-classification", model=str(out), trust_remote_code=True)
    audio = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    assert {p["label"] for p in classifier(audio, top_k=None)} == set(config["id2label"].values())


def test_recipe_refuses_bad_adversary_options(tiny_encoder, tiny_dataset, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match="speaker-confusion loss's weight, >= 0"):
        ssl_classifier.main(
            recipe_args(tiny_encoder, tiny_dataset, tmp_path / "a") + ["--speaker_adversary_weight", "-1"]
        )
    with pytest.raises(ValueError, match="needs each clip's speaker: the data has no 'voice' column"):
        ssl_classifier.main(
            recipe_args(tiny_encoder, tiny_dataset, tmp_path / "b")
            + ["--speaker_adversary_weight", "0.5", "--speaker_column", "voice"]
        )
    with pytest.raises(ValueError, match="cannot be added when continuing from --model_name_or_path"):
        ssl_classifier.main(
            recipe_args(tiny_encoder, tiny_dataset, tmp_path / "c")
            + ["--speaker_adversary_weight", "0.5", "--model_name_or_path", str(tmp_path / "any")]
        )
    assert not any((tmp_path / name).exists() for name in "abc")  # refused before the run claims its folder


def test_the_adversary_takes_its_own_learning_rate(tmp_path):
    from transformers import TrainingArguments

    model = SpeechEmotionForAudioClassification(tiny_config(speaker_adversary_speakers=4))
    args = TrainingArguments(str(tmp_path), learning_rate=1e-3, report_to="none", use_cpu=True)
    trainable = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    for rate in (None, 1e-2):
        trainer = ssl_classifier.ClassifierTrainer(model=model, args=args)
        trainer.speaker_adversary_learning_rate = rate
        groups = trainer.create_optimizer().param_groups
        assert sorted(id(p) for g in groups for p in g["params"]) == sorted(trainable)
        for g in groups:
            names = {trainable[id(p)] for p in g["params"]}
            adversary = {n.startswith("speaker_adversary.") for n in names}
            if rate is None:  # the stock optimizer: one rate for all
                assert g["lr"] == pytest.approx(1e-3)
                continue
            assert len(adversary) == 1  # no group mixes the adversary with the rest
            expected = rate if adversary == {True} else 1e-3
            assert g["lr"] == pytest.approx(expected), (names, g["lr"])


def test_a_trainer_still_collects_only_the_emotion_labels():
    """The Trainer's default label names are every forward argument named *label*: the speaker
    indices must not be one, or every evaluation without them would lose its references."""
    from transformers.utils import find_labels

    assert find_labels(SpeechEmotionForAudioClassification) == ["labels", "dimensional_labels"]


def test_the_raw_audio_path_feeds_the_adversary_too(tiny_encoder, tiny_dataset, tmp_path):  # noqa: F811
    """Without the encoder cache the collator reads the speaker indices from the raw rows: the logged
    training loss carries the adversary's speaker cross-entropy (about ln of the speakers)."""
    from test_recipe_ssl_classifier import last_state

    raw = ["--cache_encoder_outputs", "false", "--freeze_encoder", "false", "--num_train_epochs", "1"]
    first_loss = {}
    for weight in ("0", "0.5"):
        out = tmp_path / f"w{weight}"
        ssl_classifier.main(
            recipe_args(tiny_encoder, tiny_dataset, out, epochs=1)
            + raw
            + ["--speaker_adversary_weight", weight]
        )
        first_loss[weight] = next(h["loss"] for h in last_state(out)["log_history"] if "loss" in h)
    assert first_loss["0.5"] > first_loss["0"] + 1.0
