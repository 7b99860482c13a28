"""Version 2 of the synthetic corpus: unseen voices and sentences, random level and silences."""

from __future__ import annotations

import numpy as np
import pytest
from serhub.datasets_scripts import synthetic_emotions_v2 as se

SPLITS = ("train", "validation", "test", "heldout")


def _variants(voices):
    return {variant for _, variant, _ in voices}


def test_voices_many_and_disjoint():
    voices = se.split_voices(seed=0)
    assert len(voices["train"]) >= 60
    for i, a in enumerate(SPLITS):
        assert len(set(voices[a])) == len(voices[a])  # no voice twice in a split
        for b in SPLITS[i + 1 :]:
            assert not _variants(voices[a]) & _variants(voices[b]), (a, b)
    for split in SPLITS[1:]:
        genders = {g for *_, g in voices[split]}
        assert genders == {"male", "female"}, split
    used = set().union(*(_variants(v) for v in voices.values()))
    assert not used & set(se.EXCLUDED_VARIANTS)
    for family in se.VARIANT_FAMILIES:  # sound-alike variants stay in one split
        assert set(family) <= _variants(voices["train"])
    accents = {a for a, *_ in voices["train"]}
    assert accents == set(se.ACCENTS)


def test_voices_deterministic_under_seed():
    assert se.split_voices(seed=3) == se.split_voices(seed=3)
    assert se.split_voices(seed=3)["test"] != se.split_voices(seed=4)["test"]


def _normalised(bank):
    return {se._normalise(t) for t in bank}


def test_sentence_banks_large_and_disjoint():
    banks = se.split_sentence_banks(seed=0)
    for split in SPLITS:
        neutral, emotional = banks[split]
        assert len(set(neutral)) >= 500
        for emotion in se.EMOTIONS[1:]:
            assert len(set(emotional[emotion])) >= 100, (split, emotion)
    everything = {
        split: _normalised(banks[split][0]).union(*(_normalised(b) for b in banks[split][1].values()))
        for split in SPLITS
    }
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            assert not everything[a] & everything[b], (a, b)


def test_plan_priors_emotion_model_and_determinism():
    plan = se.plan_clips(clips_per_voice=12, seed=0)
    assert plan == se.plan_clips(clips_per_voice=12, seed=0)
    assert plan.clips != se.plan_clips(clips_per_voice=12, seed=1).clips
    assert len(plan.clips) == 12 * len(plan.voices) == len(plan.finish)
    banks = se.split_sentence_banks(seed=0)
    for split, members in plan.splits.items():
        clips = [c for c in plan.clips if c.speaker in members]
        n = len(clips)
        for emotion, prior in zip(se.EMOTIONS, se.CLASS_PRIORS):
            assert abs(sum(c.emotion == emotion for c in clips) - prior * n) < 1.0, (split, emotion)
        neutral, emotional = banks[split]
        for c in clips:  # every sentence from its own split's bank
            assert c.text in (emotional[c.emotion] if c.lexical else neutral)
    # the version-1 emotion model: sad lower and slower than neutral, surprise higher
    relative = {
        e: [(c.pitch - c.speaker_pitch, c.rate - c.speaker_rate) for c in plan.clips if c.emotion == e]
        for e in se.EMOTIONS
    }
    mean = {e: np.mean(values, axis=0) for e, values in relative.items()}
    assert mean["sad"][0] < mean["neutral"][0] < mean["surprise"][0]
    assert mean["sad"][1] < mean["neutral"][1] < mean["fear"][1]
    level, lead, trail, floor = np.asarray(plan.finish).T
    assert lead.min() >= se.SILENCE_S[0] and trail.max() <= se.SILENCE_S[1]
    assert se.LEVEL_DBFS[0] <= level.min() and level.max() <= se.LEVEL_DBFS[1]
    assert np.all(floor < level - 15.0)


@pytest.mark.parametrize(
    "kwargs", [{"clips_per_voice": 0}, {"emotional_text_fraction": 1.5}], ids=["no clips", "fraction"]
)
def test_plan_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        se.plan_clips(**kwargs)


def _dataset_dict(train, validation, test):
    import datasets

    def part(rows):
        return datasets.Dataset.from_dict(
            {"speaker_id": [s for s, _ in rows], "transcript": [t for _, t in rows]}
        )

    return datasets.DatasetDict(train=part(train), validation=part(validation), test=part(test))


def test_check_unseen_passes_clean_and_fails_on_constructed_leaks():
    clean = _dataset_dict(
        [("en-us+m1", "The cat sat."), ("en-gb+m2", "A dog ran.")],
        [("en-us+f1", "Birds sing.")],
        [("en-gb+f2", "Fish swim.")],
    )
    report = se.check_unseen(clean)
    assert all(not shared for shared in report["overlaps"].values())
    assert report["counts"]["train"] == {"voices": 2, "variants": 2, "accents": 2, "sentences": 2}
    # a test sentence from training, differing only in case and punctuation
    sentence_leak = _dataset_dict(
        [("en-us+m1", "The cat sat.")], [("en-us+f1", "x")], [("en-gb+f2", "the CAT sat")]
    )
    with pytest.raises(ValueError, match="sentences train&test: the cat sat"):
        se.check_unseen(sentence_leak)
    # a training variant in another accent is not an unseen voice
    variant_leak = _dataset_dict([("en-us+m1", "a")], [("en-gb+m1", "b")], [("en-gb+f2", "c")])
    with pytest.raises(ValueError, match="variants train&validation: m1"):
        se.check_unseen(variant_leak)


def test_finish_clip_sets_silences_and_level():
    sr = se.SAMPLING_RATE
    t = np.arange(sr) / sr
    speech = np.concatenate([np.zeros(800), 0.3 * np.sin(2 * np.pi * 200 * t), np.zeros(1600)]).astype(
        np.float32
    )
    out = se.finish_clip(speech, -30.0, 0.4, 0.7, -75.0, noise_seed=(0, 1))
    assert out.dtype == np.float32
    start, end = se._speech_span(out)
    assert abs(start / sr - 0.4) < 0.02 and abs((out.size - end) / sr - 0.7) < 0.02
    assert abs(se.speech_level_db(out[start:end]) - (-30.0)) < 0.5
    np.testing.assert_array_equal(out, se.finish_clip(speech, -30.0, 0.4, 0.7, -75.0, noise_seed=(0, 1)))
    loud = se.finish_clip(speech, 0.0, 0.1, 0.1, -75.0, noise_seed=(0, 1))  # capped, not clipped
    assert np.abs(loud).max() <= se.PEAK + 1e-3


def test_embedded_builder_interface():
    """What ``recipes/data.embedded_dataset_path`` needs of an embedded corpus."""
    assert callable(se.build) and callable(se.dataset_card)
    assert se.CORPUS_VERSION == 1


def test_cli_builds_version_2_with_report(tmp_path, capsys):
    import datasets

    out = tmp_path / "v2"
    se.main(["--output_dir", str(out), "--clips_per_voice", "1", "--num_workers", "2"])
    dd = datasets.load_from_disk(str(out))
    assert set(dd) == {"train", "validation", "test"}
    assert len(set(dd["train"]["speaker_id"])) >= 60
    se.check_unseen(dd)
    card = (out / "README.md").read_text()
    assert "sentences train&test | 0 |" in card and "level dBFS" in card
    assert "## Unseen voices" in capsys.readouterr().out
    assert all("loud" not in d and "soft" not in d for d in dd["train"]["descriptors"])
    report = se.acoustic_report(dd, "train")
    levels = [r["level_dbfs"] for r in report.values()]
    assert max(levels) - min(levels) < 6.0  # the level does not follow the class
    wave = dd["train"][0]["audio"]
    assert wave["sampling_rate"] == 16_000


def test_heldout_plan_uses_voices_and_sentences_no_split_uses():
    corpus = se.plan_clips(clips_per_voice=4, seed=0)
    heldout = se.plan_clips(clips_per_voice=4, seed=0, splits=("heldout",))
    assert list(heldout.splits) == ["heldout"]
    assert not {v for _, v, _ in heldout.voices} & {v for _, v, _ in corpus.voices}
    corpus_texts = {se._normalise(c.text) for c in corpus.clips}
    assert not {se._normalise(c.text) for c in heldout.clips} & corpus_texts
    with pytest.raises(ValueError, match="splits must be some of"):
        se.plan_clips(splits=("dev",))
