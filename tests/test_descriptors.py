"""Speech descriptors: the words of known quantities, measurements on clips with known pitch, range,
loudness and speaking rate (tones, espeak-ng at set rates), and the dataset tool end to end."""

import shutil
import subprocess

import datasets
import numpy as np
import pytest
from serhub.datasets_scripts import descriptors as D
from serhub.datasets_scripts.common import encode_wav, read_audio, save_dataset_dict
from serhub.datasets_scripts.synthetic_emotions import ClipSpec

SR = 16_000


def tone(freq_hz, seconds=1.0, amplitude=0.3, glide_semitones=0.0):
    """A harmonic tone (speech-like: a fundamental and overtones) whose pitch glides linearly over
    ``glide_semitones`` (centred on ``freq_hz``)."""
    t = np.arange(int(SR * seconds)) / SR
    f = freq_hz * 2.0 ** (glide_semitones * (t / seconds - 0.5) / 12.0)
    phase = 2 * np.pi * np.cumsum(f) / SR
    wave = sum(np.sin(k * phase) / k for k in range(1, 5))
    return (amplitude * wave / np.abs(wave).max()).astype(np.float32)


def espeak(text, rate_wpm):
    binary = shutil.which("espeak-ng")
    if binary is None:
        pytest.fail("espeak-ng is not installed (setup.sh installs it)")
    wav = subprocess.run(
        [binary, "-s", str(rate_wpm), "--stdout", text], capture_output=True, check=True
    ).stdout
    return read_audio(wav)


def test_words_follow_the_documented_thresholds():
    assert D.describe(3.0, 1.6, 1.3, 4.0) == "high pitch, expressive intonation, fast, loud"
    assert D.describe(-2.0, 0.5, 0.8, -3.0) == "low pitch, monotone, slow, soft"
    assert (
        D.describe(0.0, 1.0, 1.0, 0.0)
        == "moderate pitch, moderate intonation, moderate speed, moderate volume"
    )
    # at the edge the middle word holds; what was not measured is left out
    assert D.describe(1.5, None, 1.1, None) == "moderate pitch, moderate speed"
    assert D.describe() == ""
    assert D.describe_prosody_percent(20, 60, -25, -40) == "high pitch, expressive intonation, slow, soft"


def test_synthetic_clips_carry_their_exact_descriptors_relative_to_the_speaker():
    common = dict(
        utterance_id="u",
        speaker=0,
        emotion="neutral",
        text="hi",
        lexical=False,
        arousal=4,
        valence=4,
        dominance=4,
    )
    # a high-pitched speaker speaking at its own baseline is "moderate pitch"
    base = ClipSpec(
        pitch=20.0, pitch_range=0.0, rate=10.0, volume=0.0, speaker_pitch=20.0, speaker_rate=10.0, **common
    )
    assert base.descriptors == "moderate pitch, moderate intonation, moderate speed, moderate volume"
    sad = ClipSpec(
        pitch=0.0, pitch_range=-45, rate=-15, volume=-30, speaker_pitch=20.0, speaker_rate=10.0, **common
    )
    assert sad.descriptors == "low pitch, monotone, slow, soft"


def test_syllable_count():
    assert D.count_syllables("The weather is nice today") == 7
    assert D.count_syllables("I can't believe it!") == 5
    assert D.count_syllables("") == 0


def test_measured_pitch_range_and_loudness_of_tones():
    low, high = D.measure_clip(tone(150), "a"), D.measure_clip(tone(300), "a")
    assert high.median_semitones - low.median_semitones == pytest.approx(12.0, abs=0.5)
    flat, glide = D.measure_clip(tone(200), "a"), D.measure_clip(tone(200, glide_semitones=8.0), "a")
    assert flat.spread_semitones < 0.5 and glide.spread_semitones == pytest.approx(6.4, abs=1.0)  # 10-90 %
    quiet, loud = D.measure_clip(tone(200, amplitude=0.1), "a"), D.measure_clip(tone(200, amplitude=0.2), "a")
    assert loud.loudness_db - quiet.loudness_db == pytest.approx(6.02, abs=0.1)
    silence = D.measure_clip(np.zeros(SR, dtype=np.float32), "hello")
    assert silence == D.ClipAcoustics(None, None, None, None)  # nothing measurable, nothing invented


def test_measured_speaking_rate_of_espeak_at_set_rates():
    text = "The meeting has been moved to Thursday afternoon at three"
    rates = {wpm: D.measure_clip(espeak(text, wpm), text).syllables_per_second for wpm in (110, 175, 260)}
    assert rates[110] < rates[175] < rates[260]
    assert rates[260] / rates[110] > 1.6  # the words-per-minute ratio is 2.4; pauses and vowels stretch less
    relative = D.relative_to_speakers(
        [D.measure_clip(espeak(text, w), text) for w in (110, 175, 260)], ["s"] * 3
    )
    words = [D.describe(**r) for r in relative]
    assert "slow" in words[0] and "moderate speed" in words[1] and "fast" in words[2]


def test_relative_to_each_speaker():
    a = D.ClipAcoustics(10.0, 2.0, 4.0, -20.0)
    b = D.ClipAcoustics(14.0, 4.0, 5.0, -14.0)
    c = D.ClipAcoustics(22.0, 2.0, 4.0, -20.0)  # another speaker, higher voice
    rel = D.relative_to_speakers([a, b, c], ["s1", "s1", "s2"])
    assert rel[0]["pitch_semitones"] == -2.0 and rel[1]["pitch_semitones"] == 2.0
    assert rel[2] == {
        "pitch_semitones": 0.0,
        "pitch_range_ratio": 1.0,
        "speaking_rate_ratio": 1.0,
        "loudness_db": 0.0,
    }
    assert rel[1]["pitch_range_ratio"] == pytest.approx(4.0 / 3.0)
    missing = D.relative_to_speakers([D.ClipAcoustics(None, None, 3.0, None), a], ["s", "s"])
    assert missing[0]["pitch_semitones"] is None and missing[0]["speaking_rate_ratio"] == pytest.approx(
        3.0 / 3.5
    )


def _dataset(tmp_path, clips):
    rows = {
        "audio": [{"bytes": encode_wav(a), "path": f"{i}.wav"} for i, (a, _, _) in enumerate(clips)],
        "transcript": [t for _, t, _ in clips],
        "speaker_id": [s for _, _, s in clips],
    }
    ds = datasets.Dataset.from_dict(
        rows,
        features=datasets.Features(
            {
                "audio": datasets.Audio(sampling_rate=SR),
                "transcript": datasets.Value("string"),
                "speaker_id": datasets.Value("string"),
            }
        ),
    )
    path = tmp_path / "data"
    save_dataset_dict(datasets.DatasetDict({"train": ds}), path, card="# data\n")
    return path


def test_add_descriptors_to_a_dataset(tmp_path):
    text = "one two three four five six"
    path = _dataset(
        tmp_path,
        [
            (tone(150), text, "a"),
            (tone(180), text, "a"),
            (tone(220, amplitude=0.6, glide_semitones=8), text, "a"),
            (np.zeros(SR, dtype=np.float32), "", "b"),
        ],
    )
    result = D.add_descriptors(path)
    described = datasets.load_from_disk(str(path))["train"]
    assert list(described["descriptors"]) == list(result["train"]["descriptors"])
    words = list(described["descriptors"])
    assert words[0].startswith("low pitch") and words[1].startswith("moderate pitch")
    assert words[2].startswith("high pitch, expressive intonation") and words[2].endswith("loud")
    assert words[3] == ""  # silence: nothing measured
    assert described["pitch_semitones"][3] is None
    assert "## Descriptors" in (path / "README.md").read_text()
    # a second run refuses to replace them, and leaves the dataset as it is
    with pytest.raises(ValueError, match="already has a 'descriptors' column"):
        D.add_descriptors(path)
    assert list(datasets.load_from_disk(str(path))["train"]["descriptors"]) == words
    D.add_descriptors(path, overwrite_descriptors=True)  # the card keeps one Descriptors section
    assert (path / "README.md").read_text().count("## Descriptors") == 1


def test_unreadable_audio_names_the_row_and_changes_nothing(tmp_path):
    path = _dataset(tmp_path, [(tone(150), "a b", "a"), (tone(150), "a b", "a")])
    ds = datasets.load_from_disk(str(path))["train"].cast_column("audio", datasets.Audio(decode=False))
    broken = ds.map(
        lambda r, i: {
            "audio": {"bytes": b"RIFF0000" if i == 1 else r["audio"]["bytes"], "path": r["audio"]["path"]}
        },
        with_indices=True,
    )
    broken_path = tmp_path / "broken"
    save_dataset_dict(datasets.DatasetDict({"train": broken}), broken_path, card="# b\n")
    before = sorted(p.name for p in broken_path.rglob("*"))
    with pytest.raises(ValueError, match="split 'train', row 1: the audio cannot be read"):
        D.add_descriptors(broken_path)
    assert sorted(p.name for p in broken_path.rglob("*")) == before
    assert "descriptors" not in datasets.load_from_disk(str(broken_path))["train"].column_names


def test_descriptor_words_by_attribute():
    words = D.descriptor_words("High pitch, fast, husky, slow")
    assert words == {"pitch_semitones": "high pitch", "speaking_rate_ratio": "fast"}  # first "fast" wins
    assert D.descriptor_words(None) == {} and D.descriptor_words("") == {}
    text = D.describe(2.0, 0.5, 1.0, -3.0)
    assert D.descriptor_words(text) == {
        "pitch_semitones": "high pitch",
        "pitch_range_ratio": "monotone",
        "speaking_rate_ratio": "moderate speed",
        "loudness_db": "soft",
    }
