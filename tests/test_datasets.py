"""The embedded corpora: schema, splits, imbalance, determinism and refusal of bad input."""

import gzip
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
from serhub.datasets_scripts import asterisk_prompts, synthetic_emotions
from serhub.datasets_scripts.common import check_speaker_independent, read_audio, save_dataset_dict

SCHEMA = {"audio", "emotion", "transcript", "speaker_id", "utterance_id"}


def test_synthetic_schema_and_splits(synthetic_small):
    assert set(synthetic_small) == {"train", "validation", "test"}
    for split in synthetic_small.values():
        assert SCHEMA <= set(split.column_names)
        assert split.features["emotion"].names == list(synthetic_emotions.EMOTIONS)
        assert split.features["audio"].sampling_rate == 16_000
        # every split has every class, so per-class F1 exists everywhere
        assert set(split["emotion"]) == set(range(len(synthetic_emotions.EMOTIONS)))
    check_speaker_independent(synthetic_small)  # raises on leakage
    example = synthetic_small["train"][0]["audio"]
    assert example["sampling_rate"] == 16_000 and len(example["array"]) > 8000


def test_heldout_speech_uses_voices_and_sentences_outside_the_corpus():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "heldout", Path(__file__).parents[1] / "benchmarks/heldout_speech.py"
    )
    heldout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(heldout)
    clips = synthetic_emotions.plan_clips(
        12,
        seed=7,
        speakers=heldout.HELDOUT_SPEAKERS,
        neutral_sentences=heldout.HELDOUT_NEUTRAL,
        emotional_sentences=heldout.HELDOUT_EMOTIONAL,
    )
    banks = {
        *synthetic_emotions.NEUTRAL_SENTENCES,
        *(t for b in synthetic_emotions.EMOTIONAL_SENTENCES.values() for t in b),
    }
    assert {c.speaker for c in clips} == set(range(len(heldout.HELDOUT_SPEAKERS)))
    assert not any(c.text in banks for c in clips)  # sentences the corpus never reads
    assert any(c.lexical for c in clips) and any(not c.lexical and c.emotion != "neutral" for c in clips)
    corpus_voices = {(v, var) for v, var, _ in synthetic_emotions.SPEAKERS}
    assert not any((v, var) in corpus_voices for v, var, _ in heldout.HELDOUT_SPEAKERS)
    # the corpus's own plan is what it was (the builder's defaults are unchanged)
    assert [c.text for c in synthetic_emotions.plan_clips(12)] == [
        c.text for c in synthetic_emotions.plan_clips(12, speakers=synthetic_emotions.SPEAKERS)
    ]


def test_synthetic_default_design():
    clips = synthetic_emotions.plan_clips()  # the default corpus, without synthesising it
    counts = {e: sum(c.emotion == e for c in clips) for e in synthetic_emotions.EMOTIONS}
    assert max(counts, key=counts.get) == "neutral" and min(counts, key=counts.get) == "fear"
    assert counts["neutral"] / counts["fear"] >= 5
    assert len({c.speaker for c in clips}) >= 10
    emotional = [c for c in clips if c.emotion != "neutral"]
    lexical_share = np.mean([c.lexical for c in emotional])
    assert 0.4 < lexical_share < 0.6
    for c in clips:  # the words carry the emotion only in "lexical" clips
        assert (c.text in synthetic_emotions.NEUTRAL_SENTENCES) != c.lexical or c.emotion == "neutral"
    # prosody carries it everywhere: class means move in the designed direction
    mean = {e: np.mean([(c.pitch, c.rate, c.volume) for c in clips if c.emotion == e], 0) for e in counts}
    assert mean["sad"][1] < mean["neutral"][1] < mean["fear"][1]  # rate
    assert mean["angry"][2] > mean["neutral"][2] > mean["sad"][2]  # volume
    assert mean["surprise"][0] > mean["neutral"][0]  # pitch


def test_synthetic_is_deterministic():
    a = synthetic_emotions.build(clips_per_speaker=6, seed=3)
    b = synthetic_emotions.build(clips_per_speaker=6, seed=3)
    raw = datasets.Audio(decode=False)
    for split in a:
        assert a[split]["utterance_id"] == b[split]["utterance_id"]
        assert a[split].cast_column("audio", raw)["audio"] == b[split].cast_column("audio", raw)["audio"]


def test_synthetic_cli_writes_dataset_and_card(tmp_path):
    out = tmp_path / "synth"
    synthetic_emotions.main(["--output_dir", str(out), "--clips_per_speaker", "6"])
    loaded = datasets.load_from_disk(str(out))
    assert len(loaded["train"]) == 9 * 6
    card = (out / "README.md").read_text()
    assert "Synthetic speech" in card and "| neutral" in card
    with pytest.raises(FileExistsError, match="--overwrite"):
        synthetic_emotions.main(["--output_dir", str(out), "--clips_per_speaker", "6"])
    assert datasets.load_from_disk(str(out))["train"].num_rows == 54  # untouched


def test_missing_espeak_is_explained(monkeypatch):
    monkeypatch.setattr(synthetic_emotions.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-get install espeak-ng"):
        synthetic_emotions.build(clips_per_speaker=6)


def test_failed_save_leaves_nothing_behind(tmp_path, synthetic_small, monkeypatch):
    out = tmp_path / "ds"

    def crash(self, path, **kwargs):
        (tmp_path / "marker").write_text("started")
        raise OSError("disk full")

    monkeypatch.setattr(datasets.DatasetDict, "save_to_disk", crash)
    with pytest.raises(OSError, match="disk full"):
        save_dataset_dict(synthetic_small, out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["marker"]  # no temporary folder left


def test_leakage_check_names_the_speaker(synthetic_small):
    leaky = datasets.DatasetDict(
        {"train": synthetic_small["train"], "test": synthetic_small["train"].select(range(3))}
    )
    with pytest.raises(ValueError, match="speakers in two splits: en-us\\+m1"):
        check_speaker_independent(leaky)


def test_read_audio_names_bad_files(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(ValueError, match="broken.wav"):
        read_audio(bad)
    stereo = tmp_path / "stereo_44k.wav"
    sf.write(stereo, np.stack([np.ones(4410) * 0.5, np.zeros(4410)], 1), 44_100)
    mono = read_audio(stereo)
    assert mono.shape == (1600,) and abs(float(mono[800]) - 0.25) < 1e-3  # mixed down and resampled


@pytest.fixture
def fake_asterisk(tmp_path):
    """A tiny folder in the layout of Debian's asterisk-core-sounds-en(-wav)."""
    sounds = tmp_path / "sounds" / "en"
    (sounds / "digits").mkdir(parents=True)
    t = np.linspace(0, 1, 8000, endpoint=False)
    for name in ("hello", "goodbye", "beep", "digits/1", "untranscribed"):
        sf.write(sounds / f"{name}.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 8000, subtype="PCM_16")
    listing = tmp_path / "core-sounds-en.txt.gz"
    with gzip.open(listing, "wt") as f:
        f.write(
            "; Core Asterisk Sounds in English\n\nhello: Hello there.\ngoodbye: Goodbye.\nbeep: [this is a simple beep tone]\ndigits/1: one\n"
        )
    return sounds, listing


def test_asterisk_builder_on_the_real_layout(fake_asterisk):
    sounds, listing = fake_asterisk
    dd = asterisk_prompts.build(str(sounds), str(listing), test_fraction=0.5)
    rows = datasets.concatenate_datasets(list(dd.values()))
    assert sorted(rows["utterance_id"]) == [
        "digits/1",
        "goodbye",
        "hello",
    ]  # beep (no speech) and untranscribed dropped
    assert dict(zip(rows["utterance_id"], rows["transcript"]))["digits/1"] == "one"
    audio = rows[0]["audio"]
    assert audio["sampling_rate"] == 16_000 and len(audio["array"]) == 16_000  # 1 s resampled 8k -> 16k


def test_asterisk_builder_refuses_bad_input(fake_asterisk, tmp_path):
    sounds, listing = fake_asterisk
    with pytest.raises(FileNotFoundError, match="apt-get install asterisk-core-sounds-en-wav"):
        asterisk_prompts.build(str(tmp_path / "nowhere"), str(listing))
    with pytest.raises(FileNotFoundError, match="transcript file"):
        asterisk_prompts.build(str(sounds), str(tmp_path / "missing.txt.gz"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no .wav files"):
        asterisk_prompts.build(str(empty), str(listing))
    (sounds / "hello.wav").write_bytes(b"not a wav at all")
    (sounds / "goodbye.wav").write_bytes(b"")
    with pytest.raises(ValueError, match=r"(?s)2 unreadable recordings.*goodbye.wav.*hello.wav"):
        asterisk_prompts.build(str(sounds), str(listing))
    dd, skipped = asterisk_prompts.build_with_report(str(sounds), str(listing), 0.1, skip_bad=True)
    assert len(skipped) == 2 and sum(len(s) for s in dd.values()) == 1


@pytest.mark.slow
def test_asterisk_builds_from_the_debian_packages(tmp_path):
    if not asterisk_prompts.Path(asterisk_prompts.DEFAULT_SOUNDS_DIR).is_dir():
        pytest.fail("asterisk-core-sounds-en-wav is not installed; run ./setup.sh")
    asterisk_prompts.main(["--output_dir", str(tmp_path / "ast")])
    dd = datasets.load_from_disk(str(tmp_path / "ast"))
    assert len(dd["train"]) > 400 and 20 < len(dd["test"]) < 100
    assert not set(dd["train"]["utterance_id"]) & set(dd["test"]["utterance_id"])


@pytest.mark.parametrize("name", ["synthetic_emotions", "synthetic_emotions_v2", "asterisk_prompts"])
def test_every_embedded_corpus_has_a_builder(name, tmp_path, monkeypatch):
    """Each name in EMBEDDED_CORPORA maps to a builder (``build``, ``dataset_card``) in the cache."""
    from serhub.recipes import data

    monkeypatch.setenv("SERHUB_CACHE", str(tmp_path))
    module = {"synthetic_emotions": synthetic_emotions, "asterisk_prompts": asterisk_prompts}.get(name)
    if module is None:
        from serhub.datasets_scripts import synthetic_emotions_v2 as module
    tiny = datasets.DatasetDict(test=datasets.Dataset.from_dict({"x": [name]}))
    monkeypatch.setattr(module, "build", lambda: tiny)
    monkeypatch.setattr(module, "dataset_card", lambda dataset_dict: "card")
    assert name in data.EMBEDDED_CORPORA
    path = data.embedded_dataset_path(name)
    assert path.parent == tmp_path / "datasets" and path.name.startswith(name)
    assert data.load_dataset_dict(name)["test"]["x"] == [name]


def test_embedded_v2_corpus_builds_once_and_loads_by_name(tmp_path, monkeypatch):
    """`--dataset_name_or_path synthetic_emotions_v2`: the version-2 corpus, built once into the cache."""
    from serhub.datasets_scripts import synthetic_emotions_v2
    from serhub.recipes import data

    monkeypatch.setenv("SERHUB_CACHE", str(tmp_path))
    calls = []
    real = synthetic_emotions_v2.build

    def small_build():
        calls.append(1)
        return real(clips_per_voice=1, num_workers=2)

    monkeypatch.setattr(synthetic_emotions_v2, "build", small_build)
    first = data.load_dataset_dict("synthetic_emotions_v2")
    again = data.load_dataset_dict("synthetic_emotions_v2")
    assert len(calls) == 1
    assert set(first) == {"train", "validation", "test"} and len(again["test"]) == len(first["test"])
    assert len(set(first["train"]["speaker_id"])) >= 60
    synthetic_emotions_v2.check_unseen(first)
    assert (tmp_path / "datasets" / "synthetic_emotions_v2" / "README.md").is_file()


def test_heldout_speech_version_2_uses_voices_no_v2_split_uses(tmp_path):
    """benchmarks/heldout_speech.py --version 2: the v2 heldout split, built or read from a folder;
    version 1's six held-out voices are v2 training voices, so they cannot serve v2 models."""
    import importlib.util

    from serhub.datasets_scripts import synthetic_emotions_v2

    spec = importlib.util.spec_from_file_location(
        "heldout", Path(__file__).parents[1] / "benchmarks/heldout_speech.py"
    )
    heldout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(heldout)
    audio, labels, speakers, texts = heldout.heldout_clips_v2(1, corpus_seed=0)
    voices = synthetic_emotions_v2.split_voices(0)
    assert set(speakers) == {f"{a}+{v}" for a, v, _ in voices["heldout"]}
    corpus_variants = {v for split in ("train", "validation", "test") for _, v, _ in voices[split]}
    assert not {s.split("+", 1)[1] for s in speakers} & corpus_variants
    assert {v for _, v, _ in heldout.HELDOUT_SPEAKERS} & {v for _, v, _ in voices["train"]}
    assert len(audio) == len(labels) == len(texts) and set(labels) <= set(synthetic_emotions_v2.EMOTIONS)
    synthetic_emotions_v2.main(
        ["--output_dir", str(tmp_path / "h"), "--splits", "heldout", "--clips_per_voice", "1"]
    )
    read = heldout.heldout_clips_v2(1, 0, dataset=tmp_path / "h")
    assert read[1] == labels and read[2] == speakers
    np.testing.assert_allclose(read[0][0], audio[0], atol=1e-4)
