"""serhub timeline: segments of long or odd inputs, their files, and the fixed-window fallback."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from serhub.audio_io import stream_audio
from serhub.timeline import emotion_timeline, fixed_windows, main

sys.path.insert(0, str(Path(__file__).parent))
from test_speech_emotion import LABELS, make, save_speaker_prosody_model  # noqa: E402

PROMPTS = Path("/usr/share/asterisk/sounds/en")


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, fe = make("whisper")
    folder = tmp_path_factory.mktemp("tiny") / "model"
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def speech_with_pause(tmp_path_factory):
    """Two real prompts with 2 s of silence between them, as a stereo 48 kHz mp3."""
    path = tmp_path_factory.mktemp("audio") / "speech.mp3"
    first, second = PROMPTS / "agent-alreadyon.wav", PROMPTS / "activated.wav"
    ffmpeg("-i", first, "-i", second, "-filter_complex",
           "[0:a]apad=pad_dur=2[a];[a][1:a]concat=n=2:v=0:a=1,aresample=48000", "-ac", "2", path)  # fmt: skip
    first_end = sf.info(first).duration
    return path, first_end, first_end + 2.0, first_end + 2.0 + sf.info(second).duration


def test_speech_segments_follow_the_pauses(model_dir, speech_with_pause, tmp_path):
    path, first_end, second_start, second_end = speech_with_pause
    main([str(path), "--model", str(model_dir), "--output_dir", str(tmp_path / "out")])
    record = json.loads((tmp_path / "out" / "timeline.json").read_text())
    segments = record["segments"]
    assert record["labels"] == LABELS and len(segments) == 2
    assert abs(segments[0]["end"] - first_end) < 0.5 and abs(segments[1]["start"] - second_start) < 0.5
    assert abs(segments[1]["end"] - second_end) < 0.5
    for s in segments:
        assert s["label"] == max(s["probabilities"], key=s["probabilities"].get)
        assert abs(sum(s["probabilities"].values()) - 1) < 1e-4 and s["start"] < s["end"]
    rows = list(csv.DictReader((tmp_path / "out" / "timeline.csv").open()))
    assert list(rows[0]) == ["start", "end", "label", "score", *[f"p_{label}" for label in LABELS]]
    assert [r["label"] for r in rows] == [s["label"] for s in segments]
    assert (tmp_path / "out" / "timeline.png").stat().st_size > 5000
    # the same speech classified directly: the timeline's probabilities are the model's
    from transformers import pipeline

    clf = pipeline("audio-classification", model=str(model_dir), trust_remote_code=True)
    audio = np.concatenate(list(stream_audio(path)))
    first = audio[int(segments[0]["start"] * 16000) : int(segments[0]["end"] * 16000)]
    direct = {r["label"]: r["score"] for r in clf(first, top_k=None)}
    assert all(abs(direct[k] - v) < 1e-4 for k, v in segments[0]["probabilities"].items())


def test_no_speech_one_sample_and_video(model_dir, tmp_path):
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(48000, dtype=np.float32), 16000)
    assert emotion_timeline(silence, str(model_dir), progress=False) == []  # empty, not an error
    one = tmp_path / "one.wav"
    sf.write(one, np.array([0.1], dtype=np.float32), 16000)
    assert emotion_timeline(one, str(model_dir), progress=False) == []
    assert len(emotion_timeline(one, str(model_dir), vad="none", progress=False)) == 1
    main([str(silence), "--model", str(model_dir), "--output_dir", str(tmp_path / "empty")])
    assert json.loads((tmp_path / "empty" / "timeline.json").read_text())["segments"] == []
    video = tmp_path / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x64:d=3", "-i", PROMPTS / "activated.wav",
           "-shortest", "-c:v", "mpeg4", "-c:a", "aac", video)  # fmt: skip
    segments = emotion_timeline(video, str(model_dir), progress=False)
    assert len(segments) == 1 and segments[0]["end"] <= 3.1


def test_fixed_windows_and_smoothing(model_dir, speech_with_pause):
    path, *_ = speech_with_pause
    assert fixed_windows(16000 * 7, 3.0, 3.0) == [(0, 48000), (48000, 96000), (64000, 112000)]
    assert fixed_windows(0, 3.0, 3.0) == []
    windows = emotion_timeline(path, str(model_dir), vad="none", window=2.0, hop=1.0, progress=False)
    assert len(windows) >= 8 and windows[1]["start"] == 1.0
    smoothed = emotion_timeline(
        path, str(model_dir), vad="none", window=2.0, hop=1.0, smoothing=3, progress=False
    )
    spread = lambda segs: np.std([s["probabilities"][LABELS[0]] for s in segs])  # noqa: E731
    assert spread(smoothed) <= spread(windows) + 1e-9


def test_bad_inputs_are_explained(model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        emotion_timeline(tmp_path / "missing.wav", str(model_dir))
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"not audio at all")
    with pytest.raises(ValueError, match="ffmpeg cannot decode"):
        emotion_timeline(broken, str(model_dir))
    with pytest.raises(ValueError, match="vad must be"):
        emotion_timeline(broken, str(model_dir), vad="webrtc")
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        main([str(broken), "--model", str(model_dir), "--output_dir", str(out)])
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_console_script(model_dir, speech_with_pause, tmp_path):
    path, *_ = speech_with_pause
    serhub = Path(sys.executable).parent / "serhub"
    result = subprocess.run(
        [
            str(serhub),
            "timeline",
            str(path),
            "--model",
            str(model_dir),
            "--output_dir",
            str(tmp_path / "cli"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 segments" in result.stdout and (tmp_path / "cli" / "timeline.csv").is_file()


def test_a_stream_stopped_early_ends_quietly(speech_with_pause):
    path, *_ = speech_with_pause
    blocks = stream_audio(path, block_seconds=1.0)
    first = next(blocks)
    assert first.dtype == np.float32 and len(first) == 16000
    blocks.close()  # ffmpeg is stopped; no error for the part never read


def test_dimensions_when_the_model_has_a_dimensional_head(speech_with_pause, tmp_path):
    model, fe = make("whisper", dimensions=["arousal", "valence", "dominance"])
    folder = tmp_path / "avd"
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    path, *_ = speech_with_pause
    main([str(path), "--model", str(folder), "--output_dir", str(tmp_path / "out")])
    record = json.loads((tmp_path / "out" / "timeline.json").read_text())
    assert record["dimensions"] == ["arousal", "valence", "dominance"] and len(record["segments"]) == 2
    rows = list(csv.DictReader((tmp_path / "out" / "timeline.csv").open()))
    assert list(rows[0])[-3:] == ["arousal", "valence", "dominance"]
    # each segment's values are the model's own on that stretch of audio, alone (batched == one by one)
    audio = np.concatenate(list(stream_audio(path)))
    for segment, row in zip(record["segments"], rows):
        piece = audio[int(segment["start"] * 16000) : int(segment["end"] * 16000)]
        inputs = fe([piece], sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            direct = model(**inputs).dimensional[0].tolist()
        assert list(segment["dimensions"].values()) == pytest.approx(direct, abs=1e-4)
        assert float(row["valence"]) == pytest.approx(direct[1], abs=1e-4)


def test_transcripts_from_an_audio_llm_that_writes_answers(speech_with_pause, tmp_path, model_dir):
    from audio_llm_fixtures import LABELS as LLM_LABELS
    from audio_llm_fixtures import make_encoder, make_llm, make_tokenizer
    from serhub.modeling import AudioLLMForConditionalGeneration

    parts = tmp_path / "parts"
    tokenizer = make_tokenizer(parts / "llm")
    make_llm(parts / "llm", "llama", len(tokenizer) + 1)
    make_encoder(parts / "enc", "whisper")
    torch.manual_seed(0)
    llm, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        parts / "enc", parts / "llm", LLM_LABELS, connector="linear"
    )
    llm.save_pretrained(tmp_path / "audio_llm")
    processor.save_pretrained(tmp_path / "audio_llm")
    path, *_ = speech_with_pause
    main([str(path), "--model", str(tmp_path / "audio_llm"), "--output_dir", str(tmp_path / "out")])
    record = json.loads((tmp_path / "out" / "timeline.json").read_text())
    assert len(record["segments"]) == 2
    for s in record["segments"]:
        assert s["answer"].startswith("| ASR:") and isinstance(s["transcript"], str)
    rows = list(csv.DictReader((tmp_path / "out" / "timeline.csv").open()))
    assert list(rows[0])[-1] == "transcript"
    assert [r["transcript"] for r in rows] == [s["transcript"] for s in record["segments"]]
    # a classifier writes none, and asking for them says so
    assert "transcript" not in emotion_timeline(path, str(model_dir), progress=False)[0]
    with pytest.raises(ValueError, match="does not write answers"):
        emotion_timeline(path, str(model_dir), progress=False, answers=True)


def test_segments_are_the_samples_of_their_regions_across_block_boundaries(tmp_path):
    """segment_audio reads the file as a stream of 30 s blocks; a region that starts after a block's
    end (its gap crossing the boundary) must still get its own samples, as must every region after it.
    (It once skipped the gap's unread samples, so every later segment was shifted: silent wrong labels.)"""
    from serhub.audio_io import BLOCK_SECONDS
    from serhub.timeline_segments import segment_audio

    rate, block = 16000, int(BLOCK_SECONDS * 16000)
    samples = (0.1 * np.random.default_rng(0).standard_normal(int(2.4 * block))).astype(np.float32)
    path = tmp_path / "long.wav"
    sf.write(path, samples, rate, subtype="FLOAT")
    regions = [
        (1000, 20000),
        (block - 30000, block - 5000),  # ends before the first block's end...
        (block + 12000, block + 40000),  # ...and the next starts in the second block
        (2 * block - 100, 2 * block + 100),  # across a boundary
        (2 * block + 9000, len(samples)),  # to the end of the stream
    ]
    segments = list(segment_audio(path, regions))
    assert len(segments) == len(regions)
    for (start, end), segment in zip(regions, segments):
        np.testing.assert_array_equal(segment, samples[start:end])


def test_segments_keep_their_pad_of_context_and_neighbours_share_a_short_gap(speech_with_pause, tmp_path):
    """``pad`` widens each speech segment by that much on each side (the default: Silero's own 30 ms); two
    segments closer than twice the pad split the gap between them and never overlap."""
    from serhub.timeline_segments import DEFAULT_PAD, speech_regions

    path = speech_with_pause[0]
    tight, total = speech_regions(path, progress=False)
    padded, _ = speech_regions(path, pad=0.25, progress=False)
    widen = int(0.25 * 16000) - int(DEFAULT_PAD * 16000)
    assert len(tight) == len(padded) == 2 and DEFAULT_PAD == 0.03
    for (start, end), (padded_start, padded_end) in zip(tight, padded):
        assert abs(padded_start - max(0, start - widen)) <= 1
        assert abs(padded_end - min(total, end + widen)) <= 1
    close = tmp_path / "close.wav"  # the same two prompts 0.4 s apart: closer than twice the pad
    ffmpeg("-i", PROMPTS / "agent-alreadyon.wav", "-i", PROMPTS / "activated.wav", "-filter_complex",
           "[0:a]apad=pad_dur=0.4[a];[a][1:a]concat=n=2:v=0:a=1", close)  # fmt: skip
    regions, _ = speech_regions(close, pad=0.25, progress=False)
    assert len(regions) == 2 and regions[0][1] <= regions[1][0]
    assert regions[1][0] - regions[0][1] < 0.1 * 16000  # the gap is shared out, not left between them


def test_enrolled_speaker_timeline(speech_with_pause, tmp_path, model_dir):
    """--enroll: a speaker-relative model reads every segment relative to the reference recording; a
    model trained without a reference is refused before anything is written."""
    audio = speech_with_pause[0]
    folder = save_speaker_prosody_model(tmp_path / "prosody-model")
    plain = emotion_timeline(audio, str(folder), progress=False)
    enrolled = emotion_timeline(audio, str(folder), progress=False, enroll=[str(PROMPTS / "activated.wav")])
    assert [(s["start"], s["end"]) for s in plain] == [(s["start"], s["end"]) for s in enrolled]
    assert any(s["probabilities"] != t["probabilities"] for s, t in zip(plain, enrolled))
    out = tmp_path / "refused"
    with pytest.raises(ValueError, match="trained without a speaker reference"):
        main(
            [
                str(audio),
                "--model",
                str(model_dir),
                "--output_dir",
                str(out),
                "--enroll",
                str(PROMPTS / "activated.wav"),
            ]
        )
    assert not out.exists()


def test_the_file_is_its_own_reference(speech_with_pause, tmp_path, model_dir):
    """--enroll_self: the model reads every segment relative to the file's own speech segments (as if
    enrolled on them by hand), forgets them afterwards; both references at once, a model without one and
    a file with a single segment are refused before anything is written."""
    from serhub.loading import load_classifier
    from serhub.timeline_segments import segment_audio, speech_regions

    audio = speech_with_pause[0]
    folder = save_speaker_prosody_model(tmp_path / "prosody-model")
    classifier = load_classifier(str(folder))
    plain = emotion_timeline(audio, classifier, progress=False)
    regions, _ = speech_regions(audio, progress=False)
    assert len(regions) == 2
    clips = list(segment_audio(audio, regions))
    inputs = classifier.feature_extractor(clips, sampling_rate=16000, return_tensors="pt", padding=True)
    classifier.model.enroll_speaker(**inputs)
    by_hand = emotion_timeline(audio, classifier, progress=False)
    classifier.model.forget_speaker()
    own = emotion_timeline(audio, classifier, progress=False, enroll_self=True)
    for s, t in zip(by_hand, own):
        for label, p in s["probabilities"].items():
            assert t["probabilities"][label] == pytest.approx(p, abs=1e-5)
    assert any(s["probabilities"] != t["probabilities"] for s, t in zip(plain, own))
    assert emotion_timeline(audio, classifier, progress=False) == plain  # forgotten at the end
    out = tmp_path / "refused"
    for args, message in (
        (
            ["--model", str(folder), "--enroll_self", "--enroll", str(PROMPTS / "activated.wav")],
            "give one of them",
        ),
        (["--model", str(model_dir), "--enroll_self"], "trained without a speaker reference"),
        (
            ["--model", str(folder), "--enroll_self", "--vad", "none", "--window", "60", "--hop", "60"],
            "at least 2",
        ),
    ):
        with pytest.raises(ValueError, match=message):
            main([str(audio), "--output_dir", str(out), *args])
        assert not out.exists()
