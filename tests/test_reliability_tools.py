"""The timeline, ONNX export and feature extractor on faulty input: cut files, wrong models, output
folders that would destroy the model or cannot be written, bad top_k, integer PCM."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from serhub.modeling.feature_extraction_speech_emotion import pcm_to_float

from serhub import export_onnx as onnx_module
from serhub import timeline as timeline_module
from serhub.audio_io import stream_audio
from serhub.cli import main as cli
from serhub.export_onnx import OnnxAudioClassifier, export_onnx
from serhub.loading import load_classifier
from serhub.timeline import emotion_timeline, main

sys.path.insert(0, str(Path(__file__).parent))
from test_speech_emotion import LABELS, make  # noqa: E402

PROMPTS = Path("/usr/share/asterisk/sounds/en")


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def save(folder: Path, encoder: str = "whisper") -> Path:
    model, fe = make(encoder)
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    return folder


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def tone_files(tmp_path_factory):
    """A 6-s tone as WAV and mp3, whole and with the second half of their bytes cut off (an odd count:
    the WAV ends inside a sample, a decode error)."""
    folder = tmp_path_factory.mktemp("tones")
    t = np.arange(6 * 16000) / 16000
    sf.write(folder / "tone.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000, "PCM_16")
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=6", folder / "tone.mp3")
    for name in ("tone.wav", "tone.mp3"):
        data = (folder / name).read_bytes()
        (folder / f"cut-{name}").write_bytes(data[: len(data) // 2 | 1])  # the header still says 6 s
    return folder


# ---------------------------------------------------------------- W1/W2: truncated audio


def test_a_truncated_wav_is_warned_about_and_recorded(model_dir, tone_files, tmp_path):
    with pytest.warns(UserWarning, match=r"cut-tone.wav declares 6.00 s of audio, but only 3.00 s"):
        main([str(tone_files / "cut-tone.wav"), "--model", str(model_dir), "--output_dir",
              str(tmp_path / "cut"), "--vad", "none"])  # fmt: skip
    record = json.loads((tmp_path / "cut" / "timeline.json").read_text())
    assert record["declared_duration"] == 6.0 and abs(record["decoded_duration"] - 3.0) < 0.01
    assert "truncated" in record["warning"] and record["segments"][-1]["end"] <= 3.0
    # ffmpeg's own decode errors are no longer thrown away
    with pytest.warns(UserWarning, match="ffmpeg reported errors decoding"):
        list(stream_audio(tone_files / "cut-tone.wav"))


def test_a_cut_mp3_is_warned_about_and_a_whole_file_is_not(model_dir, tone_files, recwarn):
    segments, durations = emotion_timeline(
        tone_files / "tone.mp3", str(model_dir), vad="none", progress=False, return_durations=True
    )
    assert not [w for w in recwarn if "declares" in str(w.message)] and "warning" not in durations
    assert abs(durations["declared_duration"] - durations["decoded_duration"]) < 0.1 and len(segments) == 2
    with pytest.warns(UserWarning, match=r"cut-tone.mp3 declares 6.03 s of audio, but only 2.9\d s"):
        segments, durations = emotion_timeline(
            tone_files / "cut-tone.mp3", str(model_dir), vad="none", progress=False, return_durations=True
        )
    assert durations["declared_duration"] > 6.0 and durations["decoded_duration"] < 3.1
    assert len(segments) == 1


# ---------------------------------------------------------------- W6/W7: what export-onnx refuses


@pytest.mark.parametrize("model_type", ["ser_audio_llm", "llama"])
def test_export_refuses_anything_but_a_speech_classifier(tmp_path, model_type):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": model_type, "architectures": ["X"]}))
    with pytest.raises(
        ValueError, match=rf"{model_type}.*speech-emotion classifiers only.*ser_speech_emotion"
    ):
        cli(["export-onnx", "--model", str(folder), "--output_dir", str(tmp_path / "onnx")])
    assert not (tmp_path / "onnx").exists()


def test_export_never_writes_into_or_around_the_model_folder(tmp_path):
    folder = save(tmp_path / "models" / "ser", "wavlm")
    before = snapshot(folder)
    (tmp_path / "link").symlink_to(folder)
    cases = {
        folder: "is the model folder",
        tmp_path / "link": "is the model folder",  # the same folder through a symlink
        folder / "onnx": "is inside the model folder",
        tmp_path / "link" / "onnx": "is inside the model folder",
        tmp_path / "models": "contains the model folder",
    }
    for output, message in cases.items():
        with pytest.raises(ValueError, match=message):
            export_onnx(folder, output, overwrite=True)
    assert snapshot(folder) == before and not (folder / "onnx").exists()


# ---------------------------------------------------------------- C2/C3: output folders checked first


@pytest.fixture
def no_slow_work(monkeypatch):
    """Fail loudly if the model would be loaded or run."""

    def slow(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    from serhub.modeling.modeling_speech_emotion import SpeechEmotionForAudioClassification

    monkeypatch.setattr(timeline_module, "emotion_timeline", slow)
    monkeypatch.setattr(SpeechEmotionForAudioClassification, "from_pretrained", slow)


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_an_output_dir_that_is_a_file_is_refused_before_the_model_runs(
    model_dir, tone_files, tmp_path, no_slow_work, overwrite
):
    taken = tmp_path / "results"
    taken.write_text("mine")
    audio = str(tone_files / "tone.wav")
    for argv in (
        ["timeline", audio, "--model", str(model_dir), "--output_dir", str(taken), *overwrite],
        ["timeline", audio, "--model", str(model_dir), "--output_dir", str(taken / "sub"), *overwrite],
        ["export-onnx", "--model", str(model_dir), "--output_dir", str(taken), *overwrite],
    ):
        with pytest.raises(NotADirectoryError, match=r"is a file, not a folder"):
            cli(argv)
    assert taken.read_text() == "mine"


def test_an_output_dir_that_cannot_be_written_is_refused_before_the_model_runs(
    model_dir, tone_files, tmp_path, no_slow_work
):
    unwritable = [Path("/sys/serhub-out")]  # read-only even for root
    if os.geteuid() != 0:  # root writes through permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        unwritable.append(locked / "out")
    for output in unwritable:
        with pytest.raises(PermissionError, match="cannot write to"):
            cli(
                [
                    "timeline",
                    str(tone_files / "tone.wav"),
                    "--model",
                    str(model_dir),
                    "--output_dir",
                    str(output),
                ]
            )
        with pytest.raises(PermissionError, match="cannot write to"):
            cli(["export-onnx", "--model", str(model_dir), "--output_dir", str(output)])


# ---------------------------------------------------------------- W8: top_k


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    folder = save(tmp_path_factory.mktemp("onnx") / "model", "wavlm")
    export_onnx(folder, folder.parent / "onnx")
    return folder.parent / "onnx"


@pytest.mark.parametrize("top_k", [0, -1, 1.5, True, "3"])
def test_onnx_classifier_refuses_a_top_k_that_is_not_a_positive_integer(onnx_dir, top_k):
    clf = OnnxAudioClassifier(onnx_dir)
    with pytest.raises(ValueError, match=rf"top_k must be a positive integer or None, got {top_k!r}"):
        clf(np.zeros(8000, dtype=np.float32), top_k=top_k)


def test_onnx_classifier_top_k_none_gives_every_label(onnx_dir):
    clf = OnnxAudioClassifier(onnx_dir)
    audio = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    assert sorted(r["label"] for r in clf(audio, top_k=None)) == sorted(LABELS)
    assert len(clf(audio, top_k=np.int64(2))) == 2


# ---------------------------------------------------------------- C7: integer PCM


@pytest.fixture(scope="module")
def classifier(model_dir):
    from transformers import pipeline

    return pipeline("audio-classification", model=str(model_dir), trust_remote_code=True)


def scores(results):
    return {r["label"]: r["score"] for r in results}


PCM = {  # dtype -> (PCM of the same waveform, its float32 equivalent)
    np.int16: lambda x: ((x * 32767).astype(np.int16), (x * 32767).astype(np.int16) / 32768),
    np.int32: lambda x: ((x * 2**31).astype(np.int32), (x * 2**31).astype(np.int32) / 2**31),
    np.uint8: lambda x: ((x * 127 + 128).astype(np.uint8), ((x * 127 + 128).astype(np.uint8) - 128.0) / 128),
    np.float64: lambda x: (x.astype(np.float64), x),
}


@pytest.mark.parametrize("dtype", list(PCM), ids=lambda d: d.__name__)
def test_integer_pcm_and_float64_score_like_float32(classifier, dtype):
    wave = 0.5 * np.sin(2 * np.pi * 180 * np.arange(24000) / 16000)
    pcm, reference = PCM[dtype](wave)
    expected = scores(classifier(reference.astype(np.float32), top_k=None))
    got = scores(classifier(pcm, top_k=None))  # at the model's rate the array reaches serhub's extractor
    assert got.keys() == expected.keys() and all(abs(got[k] - expected[k]) < 1e-4 for k in expected)
    # at 8 kHz the pipeline resamples before serhub sees it (torchaudio refuses integers): convert first
    at_8k = scores(classifier({"raw": pcm_to_float(pcm[::2]), "sampling_rate": 8000}, top_k=None))
    ref_8k = scores(classifier({"raw": reference[::2].astype(np.float32), "sampling_rate": 8000}, top_k=None))
    assert all(abs(at_8k[k] - ref_8k[k]) < 1e-4 for k in ref_8k)


def test_audio_that_is_not_numbers_is_refused_by_dtype(classifier):
    with pytest.raises(ValueError, match="dtype complex128; expected floats in"):
        classifier.feature_extractor(np.ones(800, dtype=complex), sampling_rate=16000)
    with pytest.raises(ValueError, match="dtype bool"):
        pcm_to_float(np.zeros(10, dtype=bool))


# ---------------------------------------------------------------- C1, C4-C6: regressions


def test_a_file_named_like_an_option_is_read_as_a_file(model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    audio, rate = sf.read(PROMPTS / "activated.wav")
    sf.write("-x.wav", audio, rate)
    main(["--model", str(model_dir), "--output_dir", "out", "--vad", "none", "--", "-x.wav"])
    record = json.loads(Path("out/timeline.json").read_text())
    assert record["source"] == str((tmp_path / "-x.wav").resolve()) and len(record["segments"]) == 1


def test_a_text_llm_is_not_an_audio_classifier(tmp_path, tone_files):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, vocab_size=100)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(tmp_path / "llm")
    with pytest.raises(ValueError, match=r"not an audio classifier \(model_type 'llama'"):
        load_classifier(tmp_path / "llm")
    with pytest.raises(ValueError, match="not an audio classifier"):
        emotion_timeline(tone_files / "tone.wav", str(tmp_path / "llm"), progress=False)


def test_a_missing_path_or_a_url_is_a_missing_folder_and_the_network_is_never_used(monkeypatch):
    calls = []

    def no_network(*args, **kwargs):
        calls.append(args)
        raise OSError("the network was used")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(FileNotFoundError, match=r"^/no/such/model: no such model folder"):
        load_classifier("/no/such/model")
    with pytest.raises(FileNotFoundError, match=r"^https://example.com/model: no such model folder"):
        load_classifier("https://example.com/model")
    assert calls == [] and os.environ["HF_HUB_OFFLINE"] == "1"


def test_onnx_module_keeps_its_command_line(tmp_path):
    """``python -m serhub.export_onnx`` and ``serhub export-onnx`` share their arguments."""
    with pytest.raises(ValueError, match="is the model folder"):
        onnx_module.main(["--model", str(save(tmp_path / "m", "wavlm")), "--output_dir", str(tmp_path / "m")])


# ---------------------------------------------------------------- #13: int64 PCM


def test_int64_pcm_is_refused_rather_than_scored_as_silence(classifier):
    """numpy's default integers (int64) hold 16-, 24- or 32-bit samples: scaled by 2**63 they were silence."""
    pcm = (0.5 * 32767 * np.sin(2 * np.pi * 180 * np.arange(24000) / 16000)).astype(np.int16)
    for dtype in (np.int64, np.uint64):
        with pytest.raises(ValueError, match=rf"dtype {np.dtype(dtype)}.*expected int16/int32/uint8 PCM"):
            pcm_to_float(pcm.astype(dtype))
    with pytest.raises(ValueError, match=r"audio #0: .*dtype int64.*audio.astype\(np.int16\)"):
        classifier(pcm.astype(np.int64), top_k=None)
    # the conversion the message names scores like the int16 PCM itself
    assert scores(classifier(pcm.astype(np.int64).astype(np.int16), top_k=None)) == scores(
        classifier(pcm, top_k=None)
    )


# ---------------------------------------------------------------- #23: smoothing for any k


def _segments(rows):
    return [{"start": float(i), "end": i + 1.0, "probabilities": {"a": a, "b": 1 - a}, "dimensions": {"x": 2 * a}}
            for i, a in enumerate(rows)]  # fmt: skip


@pytest.mark.parametrize(
    "k, expected",
    [
        (1, [1.0, 0.0, 0.0, 0.0, 0.5]),
        (3, [0.5, 1 / 3, 0.0, 0.5 / 3, 0.25]),  # centred; the ends average the neighbours they have
        (4, [0.5, 1 / 3, 0.25, 0.5 / 4, 0.5 / 3]),  # even: 2 before, 1 after
        (50, [0.3] * 5),  # far more than the segments: every segment reaches all of them
    ],
)
def test_smoothing_is_a_centred_moving_average_truncated_at_the_ends(k, expected):
    smoothed = timeline_module._smooth(_segments([1.0, 0.0, 0.0, 0.0, 0.5]), k)
    np.testing.assert_allclose([s["probabilities"]["a"] for s in smoothed], expected, atol=1e-12)
    np.testing.assert_allclose(
        [s["probabilities"]["b"] for s in smoothed], 1 - np.array(expected), atol=1e-12
    )
    np.testing.assert_allclose([s["dimensions"]["x"] for s in smoothed], 2 * np.array(expected), atol=1e-12)


def test_a_smoothing_longer_than_the_recording_averages_every_window(model_dir, tmp_path):
    """--smoothing 50 on six 1-s windows that score differently (a tone a second, rising, louder)."""
    t = np.arange(16000) / 16000
    wave = np.concatenate([0.1 * (i + 1) * np.sin(2 * np.pi * 150 * (i + 1) * t) for i in range(6)])
    sf.write(tmp_path / "steps.wav", wave.astype(np.float32), 16000, "FLOAT")
    kwargs = dict(vad="none", window=1.0, hop=1.0, progress=False)
    raw = emotion_timeline(tmp_path / "steps.wav", str(model_dir), **kwargs)
    smoothed = emotion_timeline(tmp_path / "steps.wav", str(model_dir), smoothing=50, **kwargs)
    assert len(raw) == len(smoothed) == 6
    probs = np.array([[s["probabilities"][label] for label in LABELS] for s in raw])
    assert np.ptp(probs, axis=0).max() > 1e-4  # the windows differ (a tiny random model: slightly)
    for segment in smoothed:
        got = np.array([segment["probabilities"][label] for label in LABELS])
        np.testing.assert_allclose(got, probs.mean(0), rtol=0, atol=1e-9)


# ---------------------------------------------------------------- #24/#25: timeline arguments


@pytest.mark.parametrize(
    "option, value, rule",
    [
        ("--batch_size", "0", "an integer >= 1"),
        ("--batch_size", "-3", "an integer >= 1"),
        ("--min_speech", "-0.1", "a number of seconds >= 0"),
        ("--max_segment", "0", "a number of seconds > 0"),
        ("--pad", "-5", "a number of seconds >= 0"),
        ("--window", "nan", "a number of seconds > 0"),
        ("--hop", "-1", "a number of seconds > 0"),
        ("--smoothing", "0", "an integer >= 1"),
    ],
)
def test_timeline_arguments_that_make_no_sense_are_refused_before_the_model_loads(
    model_dir, tone_files, tmp_path, monkeypatch, option, value, rule
):
    def slow(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(timeline_module, "load_classifier", slow)
    monkeypatch.setattr(timeline_module, "speech_regions", slow)
    argv = [
        "timeline",
        str(tone_files / "tone.wav"),
        "--model",
        str(model_dir),
        "--output_dir",
        str(tmp_path / "o"),
    ]
    with pytest.raises(ValueError, match=rf"^{option} must be {rule}(.|\n)*, got .*; e.g. {option} "):
        cli([*argv, option, value])
    assert not (tmp_path / "o").exists()


def test_speech_regions_refuses_a_negative_pad(tone_files):
    with pytest.raises(ValueError, match=r"--pad must be a number of seconds >= 0 .*got -0.5"):
        timeline_module.speech_regions(tone_files / "tone.wav", pad=-0.5, progress=False)


# ---------------------------------------------------------------- #31-#33: export-onnx exit code and options


def test_a_successful_export_onnx_exits_with_code_0(monkeypatch, tmp_path, capsys):
    """The console script passes main()'s return value to sys.exit: a dict there is exit code 1."""
    from importlib.metadata import entry_points

    monkeypatch.setattr(onnx_module, "export_onnx", lambda *args: {"max_abs_difference": 1e-7})
    (entry_point,) = entry_points(group="console_scripts", name="serhub")
    with pytest.raises(SystemExit) as exited:
        sys.exit(entry_point.load()(["export-onnx", "--model", "m", "--output_dir", str(tmp_path / "o")]))
    assert (
        exited.value.code in (None, 0)
        and "max |logit difference| to PyTorch 1.00e-07" in capsys.readouterr().out
    )


@pytest.mark.parametrize("opset", [5, 17, 10_000, True, 18.0])
def test_export_refuses_an_opset_the_exporter_cannot_write(model_dir, tmp_path, no_slow_work, opset):
    with pytest.raises(ValueError, match=rf"--opset must be an integer from 18 to \d+, got {opset!r}"):
        export_onnx(model_dir, tmp_path / "onnx", opset=opset)
    assert not (tmp_path / "onnx").exists()
    if opset == 5:  # the command line as the probe ran it
        with pytest.raises(ValueError, match="--opset must be an integer from 18"):
            cli(
                [
                    "export-onnx",
                    "--model",
                    str(model_dir),
                    "--output_dir",
                    str(tmp_path / "o"),
                    "--opset",
                    "5",
                ]
            )


def test_the_recorded_opset_is_the_written_graphs(onnx_dir):
    report = json.loads((onnx_dir / onnx_module.REPORT_FILE).read_text())
    assert report["opset"] == onnx_module.graph_opset(onnx_dir / onnx_module.ONNX_FILE) == 18


@pytest.mark.parametrize("tolerance", ["nan", "inf", "-1e-4"])
def test_export_refuses_a_tolerance_that_switches_the_parity_check_off(
    model_dir, tmp_path, no_slow_work, tolerance
):
    with pytest.raises(ValueError, match=r"--tolerance must be a finite number >= 0"):
        cli(
            [
                "export-onnx",
                "--model",
                str(model_dir),
                "--output_dir",
                str(tmp_path / "o"),
                f"--tolerance={tolerance}",  # "=": argparse takes "-1e-4" alone for an option
            ]
        )
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- #35/#36: OnnxAudioClassifier inputs


def test_onnx_classifier_refuses_a_clip_longer_than_the_exported_window(onnx_dir):
    clf = OnnxAudioClassifier(onnx_dir)
    limit = clf.max_seconds
    assert limit == json.loads((onnx_dir / onnx_module.REPORT_FILE).read_text())["max_input_length"] / 16000
    noise = (0.1 * np.random.default_rng(0).standard_normal(int((limit + 1) * 16000))).astype(np.float32)
    with pytest.raises(ValueError, match=rf"audio #0 is {limit + 1:.2f} s long, .* at most {limit:.2f} s"):
        clf(noise)
    with pytest.raises(ValueError, match=rf"audio #1 is .* at most {limit:.2f} s"):
        clf([noise[:8000], noise])
    assert len(clf(noise[:8000], top_k=1)) == 1  # (a whole 30-s window takes gigabytes on onnxruntime)


@pytest.fixture(scope="module")
def onnx_and_pipeline(onnx_dir):
    from transformers import pipeline

    clf = OnnxAudioClassifier(onnx_dir)
    return clf, pipeline("audio-classification", model=str(onnx_dir.parent / "model"), trust_remote_code=True)


def close(a, b, atol=1e-4):
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) < atol for k in a)


def test_onnx_classifier_takes_what_the_pipeline_takes(onnx_and_pipeline, tmp_path):
    import torch

    clf, pipe = onnx_and_pipeline
    x = (0.1 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32)
    reference = scores(pipe(x, top_k=None))
    assert close(scores(clf(x, top_k=None)), reference)
    assert close(scores(clf(torch.from_numpy(x), top_k=None)), reference)
    assert close(scores(clf({"raw": x, "sampling_rate": 16000}, top_k=None)), reference)
    # other rates are resampled as the pipeline resamples them
    x8k = x[::2].copy()
    for key in ("raw", "array"):
        got = scores(clf({key: x8k, "sampling_rate": 8000}, top_k=None))
        assert close(got, scores(pipe({key: x8k, "sampling_rate": 8000}, top_k=None)))
    # a file, decoded by ffmpeg
    sf.write(tmp_path / "x.wav", x, 16000, "FLOAT")
    assert close(scores(clf(str(tmp_path / "x.wav"), top_k=None)), reference)
    assert close(scores(clf(tmp_path / "x.wav", top_k=None)), reference)
    # a list is a batch, each clip scored as alone
    batch = clf([x, x[:4000], tmp_path / "x.wav"], top_k=None)
    assert len(batch) == 3 and close(scores(batch[0]), reference) and close(scores(batch[2]), reference)
    assert close(scores(batch[1]), scores(pipe(x[:4000], top_k=None)))


@pytest.mark.parametrize(
    "make_audio, message",
    [
        (
            lambda x: np.stack([x, x], 1),
            r"expected mono 1-D audio, got shape \(16000, 2\); average the channels",
        ),
        (lambda x: np.stack([x, x]), r"expected mono 1-D audio, got shape \(2, 16000\)"),
        (lambda x: [x, np.stack([x, x], 1)], r"audio #1: expected mono 1-D audio"),
        (lambda x: list(x[:100]), "audio is a list of numbers; a list is a batch of clips"),
        (lambda x: {"samples": x}, r"a dict with keys \['samples'\]; expected the samples under 'raw'"),
        (lambda x: (x * 32767).astype(np.int64), "dtype int64"),
        (lambda x: b"RIFF", "is a bytes; expected a mono 1-D numpy array"),
    ],
    ids=["stereo (N, 2)", "(2, N)", "stereo in a batch", "list of numbers", "dict", "int64", "bytes"],
)
def test_onnx_classifier_refuses_audio_the_pipeline_refuses(onnx_and_pipeline, make_audio, message):
    clf, _ = onnx_and_pipeline
    x = (0.1 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32)
    with pytest.raises(ValueError, match=message):
        clf(make_audio(x))


# ---------------------------------------------------------------- #41: descriptors' speaker column


def test_a_speaker_column_named_but_missing_is_refused_and_the_default_falls_back_with_a_warning(tmp_path):
    import datasets
    from serhub.datasets_scripts import descriptors
    from test_descriptors import _dataset, tone

    path = _dataset(tmp_path, [(tone(150), "one two three", "a"), (tone(180), "one two three", "a")])
    with pytest.raises(
        ValueError, match=r"no speaker column 'nosuch'; its columns are \['audio', 'transcript', "
    ):
        descriptors.main(["--dataset", str(path), "--speaker_column", "nosuch"])
    assert "descriptors" not in datasets.load_from_disk(str(path))["train"].column_names
    # without a speaker_id column and none named: the whole corpus is the reference, said aloud
    data = datasets.load_from_disk(str(path)).remove_columns("speaker_id")
    data.save_to_disk(str(tmp_path / "anonymous"))
    with pytest.warns(UserWarning, match="no 'speaker_id' column .* relative to the whole corpus"):
        result = descriptors.add_descriptors(tmp_path / "anonymous")
    assert len(result["train"]["descriptors"]) == 2
