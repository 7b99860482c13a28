"""Audio-LLMs that read prosody relative to the speaker (``speaker_prosody``): the prosody's label scores
added to the LLM's, enrolment, save / reload, the pipeline, learning, and the recipe's data."""

import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from serhub.modeling import (
    AudioLLMForAudioClassification,
    AudioLLMForConditionalGeneration,
    SpeechEmotionFeatureExtractor,
)
from serhub.recipes.audio_llm_common import CachedAudioLLMCollator
from serhub.recipes.speaker_prosody import measuring_feature_extractor, speaker_prosody_columns
from transformers import pipeline

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import LABELS, make_encoder, make_llm, make_tokenizer  # noqa: E402

STATISTICS = (np.full(10, 0.5), np.zeros(10), np.full(10, 2.0), np.full(10, 0.25))


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    tokenizer = make_tokenizer(root / "llm")
    make_llm(root / "llm", "llama", len(tokenizer) + 1)
    make_encoder(root / "enc", "whisper")
    return root


def build(parts, speaker_prosody=True):
    torch.manual_seed(0)
    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        parts / "enc", parts / "llm", LABELS, connector="linear", stack_factor=2,
        speaker_prosody=speaker_prosody,
    )  # fmt: skip
    return model.eval(), processor


def voiced(seconds=0.6, f0=140.0, seed=0):
    """A buzzy vowel-like tone (pitch measurable) with a little noise."""
    t = np.arange(int(16000 * seconds)) / 16000
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    noise = 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return (0.2 * tone + noise).astype(np.float32)


def scored(model, seed=1):
    """The prosody module with statistics and non-zero weights, as after training."""
    model.prosody.set_statistics(*STATISTICS)
    torch.manual_seed(seed)
    with torch.no_grad():
        model.prosody.out_proj.weight.normal_(0.0, 1.0)
    return model


def features(processor, clips, prosody=True):
    fe = measuring_feature_extractor(processor.feature_extractor) if prosody else processor.feature_extractor
    return fe(clips, sampling_rate=16000, return_tensors="pt", return_attention_mask=True)


def test_a_new_prosody_model_scores_as_one_without(parts):
    """The prosody scores start at zero: the same LLM with and without them gives the same label scores."""
    with_prosody, processor = build(parts)
    without, _ = build(parts, speaker_prosody=False)
    without.load_state_dict(with_prosody.state_dict(), strict=False)  # the same connector
    clips = [voiced(f0=120.0), voiced(f0=220.0, seed=1)]
    inputs = features(processor, clips)
    with torch.no_grad():
        a = with_prosody.as_classifier()(**inputs).logits
        b = without.as_classifier()(**{k: v for k, v in inputs.items() if k != "prosody_values"}).logits
    torch.testing.assert_close(a, b)


def test_saved_and_reloaded_scores_are_equal_and_enrolment_changes_them(parts, tmp_path):
    model, processor = build(parts)
    scored(model)
    model.save_pretrained(tmp_path / "m")
    processor.feature_extractor = measuring_feature_extractor(processor.feature_extractor)
    processor.save_pretrained(tmp_path / "m")
    clips = [voiced(f0=110.0), voiced(0.9, f0=180.0, seed=2), voiced(0.5, f0=260.0, seed=3)]
    inputs = features(processor, clips)
    clf = AudioLLMForAudioClassification.from_pretrained(tmp_path / "m").eval()
    for name in ("fill", "mean", "std", "population_reference"):
        torch.testing.assert_close(getattr(clf.prosody.prosody, name), getattr(model.prosody.prosody, name))
    with torch.no_grad():
        expected = model.as_classifier()(**inputs).logits
        plain = clf(**inputs).logits
        torch.testing.assert_close(plain, expected)
        # batched == one at a time
        one = torch.cat([clf(**features(processor, [c])).logits for c in clips])
        torch.testing.assert_close(one, plain, atol=1e-4, rtol=0)
        clf.enroll_speaker(**features(processor, [voiced(f0=250.0, seed=4)]))
        enrolled = clf(**inputs).logits
        assert not torch.allclose(enrolled, plain)
        # the reference passed explicitly is what enrolment gives
        reference = clf.prosody.reference_of(
            features(processor, [voiced(f0=250.0, seed=4)])["prosody_values"]
        )
        torch.testing.assert_close(clf(**inputs, prosody_reference=reference.expand(3, -1)).logits, enrolled)
        clf.forget_speaker()
        torch.testing.assert_close(clf(**inputs).logits, plain)

    pipe = pipeline("audio-classification", model=str(tmp_path / "m"), trust_remote_code=True)
    result = pipe(clips[0], top_k=len(LABELS))
    assert {r["label"] for r in result} == set(LABELS)
    expected_probs = expected[0].softmax(-1)
    by_label = {r["label"]: r["score"] for r in result}
    assert np.allclose([by_label[label] for label in LABELS], expected_probs.numpy(), atol=1e-4)


def test_missing_prosody_and_bad_enrolment_are_explained(parts):
    model, processor = build(parts)
    clf = model.as_classifier()
    audio = processor.feature_extractor([voiced()], sampling_rate=16000, return_tensors="pt")
    with pytest.raises(ValueError, match="prosody_values.*return_prosody=True"):
        clf(**audio)
    with pytest.raises(ValueError, match="no voiced speech"):
        clf.enroll_speaker(**features(processor, [np.zeros(8000, dtype=np.float32)]))
    with pytest.raises(ValueError, match="enroll_speaker needs the reference clips' prosody_values"):
        clf.enroll_speaker(**audio)
    plain, _ = build(parts, speaker_prosody=False)
    with pytest.raises(ValueError, match="trained without a speaker reference"):
        plain.as_classifier().enroll_speaker(**features(processor, [voiced()]))
    # text alone has no audio, so no prosody: scored by the LLM as before
    text = processor(text=["a sentence"], task="ser", prompt_index=0, shuffle_labels=False)
    with torch.no_grad():
        assert clf(**text).logits.shape == (1, len(LABELS))


def test_the_prosody_scores_learn_what_only_prosody_tells(parts):
    """Frozen LLM and connector: the prosody MLP alone learns labels set by the pitch relative to the
    speaker (the same audio tokens for every clip), through the recipes' SER-only class_labels loss."""
    model, processor = build(parts)
    model.prosody.set_statistics(np.zeros(10), np.zeros(10), np.ones(10), np.zeros(10))
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.prosody.parameters():
        p.requires_grad_(True)
    rng = np.random.default_rng(0)
    n = 64
    classes = torch.as_tensor(rng.integers(0, len(LABELS), n))
    reference = torch.as_tensor(rng.normal(0, 1, (n, 10)), dtype=torch.float32)
    values = reference + torch.as_tensor(rng.normal(0, 0.1, (n, 10)), dtype=torch.float32)
    values[:, 0] += 1.5 * (classes.float() - 1.5)  # the label is the pitch above the speaker's own
    states = torch.zeros(n, 8, model.config.audio_config.d_model)
    batch = processor(audio_token_counts=[processor.audio_token_counts(8)] * n, task="ser", prompt_index=0,
                      shuffle_labels=False)  # fmt: skip
    common = dict(batch, encoder_hidden_states=states, prosody_values=values, prosody_reference=reference)
    optimizer = torch.optim.Adam(model.prosody.parameters(), lr=3e-2)
    model.train()
    losses = []
    for _ in range(60):
        loss = model(**common, class_labels=classes).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    with torch.no_grad():
        accuracy = (model(**common, class_labels=classes).logits.argmax(-1) == classes).float().mean()
    assert losses[-1] < 0.5 * losses[0] and accuracy > 0.9


def _split(speakers, label_ids, seconds=0.5):
    audio = [
        {"array": voiced(seconds, 100.0 + 20 * i, seed=i), "sampling_rate": 16000}
        for i in range(len(speakers))
    ]
    return datasets.Dataset.from_dict({"audio": audio, "speaker": speakers, "labels": label_ids})


def test_speaker_prosody_columns_repeat_for_augmented_copies_and_refuse_a_mismatch():
    source = _split(["a", "a", "a", "b", "b"], [1, 0, 2, 0, 3])
    cached = datasets.Dataset.from_dict({"x": list(range(10))})  # the clean clips and one augmented copy
    out, statistics = speaker_prosody_columns(
        {"train": cached}, {"train": source}, "speaker", LABELS, "train"
    )
    values = np.asarray(out["train"]["prosody_values"])
    reference = np.asarray(out["train"]["prosody_reference"])
    assert values.shape == (10, 10) and np.allclose(values[:5], values[5:], equal_nan=True)
    # speaker a's reference: its neutral clip (row 1) and its first other clip (row 0)
    filled = np.where(np.isnan(values), statistics[0], values)
    assert np.allclose(reference[0], filled[[0, 1]].mean(0)) and np.allclose(
        reference[3], filled[[3, 4]].mean(0)
    )
    assert [len(s) for s in statistics] == [10, 10, 10, 10]
    with pytest.raises(ValueError, match="one row per clip"):
        speaker_prosody_columns(
            {"train": cached.select(range(7))}, {"train": source}, "speaker", LABELS, "train"
        )


def test_the_collator_passes_each_rows_prosody(parts):
    _, processor = build(parts)
    rows = [
        {"encoder_hidden_states": np.ones((6, 4), np.float32), "labels": 1,
         "prosody_values": np.arange(10, dtype=np.float32), "prosody_reference": np.zeros(10, np.float32)},
        {"encoder_hidden_states": np.ones((4, 4), np.float32), "labels": 0,
         "prosody_values": np.ones(10, np.float32), "prosody_reference": np.ones(10, np.float32)},
    ]  # fmt: skip
    batch = CachedAudioLLMCollator(processor, "ser", LABELS, class_targets=True, fixed_prompt=True)(rows)
    assert batch["prosody_values"].shape == (2, 10) and batch["prosody_values"][0, 3] == 3.0
    assert torch.equal(batch["prosody_reference"][1], torch.ones(10))


def test_a_feature_extractor_that_measures_prosody_is_saved_and_reloaded(tmp_path):
    fe = measuring_feature_extractor(SpeechEmotionFeatureExtractor(feature_type="waveform"))
    fe.save_pretrained(tmp_path)
    again = SpeechEmotionFeatureExtractor.from_pretrained(tmp_path)
    out = again([voiced()], sampling_rate=16000, return_tensors="pt")
    assert out["prosody_values"].shape == (1, 10) and torch.isfinite(out["prosody_values"][0, 0])


def test_serhub_predict_enrols_an_audio_llm_and_refuses_one_without_prosody(parts, tmp_path, capsys):
    """``serhub predict --enroll`` on an audio-LLM folder: the files are read relative to the reference;
    an audio-LLM trained without a reference is refused before the CSV is written."""
    import csv

    import soundfile as sf

    from serhub.cli import main as serhub

    folder, plain_folder = tmp_path / "prosody-llm", tmp_path / "plain-llm"
    model, processor = build(parts)
    scored(model).save_pretrained(folder)
    processor.feature_extractor = measuring_feature_extractor(processor.feature_extractor)
    processor.save_pretrained(folder)
    plain, plain_processor = build(parts, speaker_prosody=False)
    plain.save_pretrained(plain_folder)
    plain_processor.save_pretrained(plain_folder)
    files = []
    for i, f0 in enumerate((120.0, 180.0, 240.0)):
        files.append(str(tmp_path / f"clip{i}.wav"))
        sf.write(files[-1], voiced(0.6, f0, seed=i), 16000)
    reference = tmp_path / "reference.wav"
    sf.write(reference, voiced(1.0, 260.0, seed=9), 16000)

    def scores(path):
        return [[float(r[f"score{k}"]) for k in ("", "_2")] for r in csv.DictReader(path.open())]

    serhub(["predict", *files, "--model", str(folder), "--output", str(tmp_path / "a.csv"), "--top_k", "2"])
    serhub(["predict", *files, "--model", str(folder), "--output", str(tmp_path / "b.csv"), "--top_k", "2",
            "--enroll", str(reference)])  # fmt: skip
    assert not np.allclose(scores(tmp_path / "a.csv"), scores(tmp_path / "b.csv"))
    refused = tmp_path / "refused.csv"
    with pytest.raises(ValueError, match="trained without a speaker reference"):
        serhub(
            [
                "predict",
                *files,
                "--model",
                str(plain_folder),
                "--output",
                str(refused),
                "--enroll",
                str(reference),
            ]
        )
    assert not refused.exists()


def test_reference_dropout_trains_and_reads_clips_with_no_reference(parts):
    """prosody_reference_dropout: in training a share of the clips is read with no reference (their own
    numbers); in use a speaker not enrolled is read that way, not against the training voices' average."""
    torch.manual_seed(0)
    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        parts / "enc", parts / "llm", LABELS, connector="linear", stack_factor=2, speaker_prosody=True,
        prosody_reference_dropout=0.5,
    )  # fmt: skip
    scored(model)
    clf = model.as_classifier().eval()
    inputs = features(processor, [voiced(f0=110.0), voiced(f0=200.0, seed=1), voiced(f0=300.0, seed=2)])
    values = inputs["prosody_values"]
    with torch.no_grad():
        own = clf(**inputs, prosody_reference=values).logits  # each clip its own reference: relative 0
        assert torch.allclose(clf(**inputs).logits, own)  # not enrolled: no reference
        nan = clf(**inputs, prosody_reference=torch.full_like(values, float("nan"))).logits
        torch.testing.assert_close(nan, own)
        reference = torch.full_like(values, 0.0)
        enrolled = clf(**inputs, prosody_reference=reference).logits
        assert not torch.allclose(enrolled, own)
        clf.train()
        torch.manual_seed(3)
        rows = [clf(**inputs, prosody_reference=reference).logits for _ in range(8)]
    clf.eval()
    # in training each clip is read with its reference or with none, at random
    for row in rows:
        for i in range(3):
            assert torch.allclose(row[i], enrolled[i], atol=1e-5) or torch.allclose(row[i], own[i], atol=1e-5)
    assert any(not torch.allclose(r, enrolled, atol=1e-5) for r in rows)
    assert any(not torch.allclose(r, own, atol=1e-5) for r in rows)


def test_prosody_settings_out_of_range_are_refused():
    from serhub.modeling import AudioLLMConfig

    with pytest.raises(ValueError, match="prosody_reference_dropout must be in"):
        AudioLLMConfig(labels=LABELS, speaker_prosody=True, prosody_reference_dropout=1.0)
    with pytest.raises(ValueError, match="prosody_hidden_size must be >= 1"):
        AudioLLMConfig(labels=LABELS, speaker_prosody=True, prosody_hidden_size=0)
