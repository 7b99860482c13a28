"""datasets_scripts.transcribe: which rows, resuming after a crash, the atomic rewrite and the card;
and (slow) the offline Whisper tiny.en on real speech (Debian's Asterisk prompts)."""

import json
import shutil
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
from serhub.datasets_scripts import asterisk_prompts, transcribe
from serhub.datasets_scripts.common import encode_wav, save_dataset_dict, ser_features
from serhub.metrics.asr import word_error_rate


class FakeASR:
    """The pipeline's interface: a list of {"raw", "sampling_rate"} in, [{"text"}] out."""

    def __init__(self, crash_after: int | None = None, multilingual: bool = False):
        self.calls, self.crash_after = [], crash_after
        self.model = SimpleNamespace(generation_config=SimpleNamespace(is_multilingual=multilingual))

    def __call__(self, inputs, batch_size, **kwargs):
        if self.crash_after is not None and len(self.calls) == self.crash_after:
            raise RuntimeError("killed")
        self.calls.append((len(inputs), kwargs))
        return [{"text": f" {len(x['raw'])} samples"} for x in inputs]


@pytest.fixture
def small_dataset(tmp_path):
    """train: 5 clips (2 already transcribed), test: 3 clips; clip i lasts 0.1 * (i + 1) s."""
    features = ser_features(["neutral"], optional=("language",))

    def split(n, transcripts, offset):
        clips = [np.zeros(1600 * (offset + i + 1), np.float32) for i in range(n)]
        return datasets.Dataset.from_dict(
            {
                "audio": [
                    {"bytes": encode_wav(c), "path": f"u{offset + i}.wav"} for i, c in enumerate(clips)
                ],
                "emotion": [0] * n,
                "transcript": transcripts,
                "speaker_id": ["s"] * n,
                "utterance_id": [f"u{offset + i}" for i in range(n)],
                "language": ["en"] * n,
            },
            features=features,
        )

    dd = datasets.DatasetDict(
        {"train": split(5, ["", "kept one", "", " ", "kept two"], 0), "test": split(3, [""] * 3, 5)}
    )
    path = tmp_path / "ds"
    save_dataset_dict(dd, path, card="# Small\n\n## Statistics\n\nnone\n")
    return path


def test_transcribes_empty_rows_only_and_rewrites_atomically(small_dataset):
    asr = FakeASR()
    result = transcribe.transcribe(small_dataset, "fake/model", batch_size=2, asr=asr)
    assert sum(n for n, _ in asr.calls) == 6  # 3 empty train rows + 3 test rows
    expected = ["1600 samples", "kept one", "4800 samples", "6400 samples", "kept two"]
    assert result["train"]["transcript"] == expected
    assert result["test"]["transcript"] == ["9600 samples", "11200 samples", "12800 samples"]
    columns = ["audio", "emotion", "transcript", "speaker_id", "utterance_id", "language"]
    assert result["train"].column_names == columns  # the column keeps its place
    assert not (small_dataset / transcribe.PROGRESS_FILE).exists()
    card = (small_dataset / "README.md").read_text()
    assert card.startswith("# Small") and "`transcript` of 6 rows was written by `fake/model`" in card
    assert not list(small_dataset.parent.glob(".ds*"))  # no temporary folder left


def test_a_crash_keeps_the_work_done_and_a_rerun_continues(small_dataset):
    with pytest.raises(RuntimeError, match="killed"):
        transcribe.transcribe(
            small_dataset, "fake/model", batch_size=2, save_every=1, asr=FakeASR(crash_after=2)
        )
    lines = (small_dataset / transcribe.PROGRESS_FILE).read_text().splitlines()
    assert json.loads(lines[0]) == {"model": "fake/model", "overwrite_transcripts": False}
    assert [json.loads(line)["utterance_id"] for line in lines[1:]] == ["u0", "u2", "u3"]
    assert datasets.load_from_disk(str(small_dataset))["train"]["transcript"][0] == ""  # dataset untouched
    with pytest.raises(ValueError, match="progress of a run with .*fake/model.*delete the file"):
        transcribe.transcribe(small_dataset, "other/model", asr=FakeASR())
    rerun = FakeASR()
    result = transcribe.transcribe(small_dataset, "fake/model", batch_size=2, asr=rerun)
    assert sum(n for n, _ in rerun.calls) == 3  # only the test split was left
    assert "" not in list(result["train"]["transcript"]) + list(result["test"]["transcript"])


def test_overwrite_and_a_second_run(small_dataset, capsys):
    transcribe.transcribe(small_dataset, "fake/model", asr=FakeASR())
    nothing = FakeASR()
    transcribe.transcribe(small_dataset, "fake/model", asr=nothing)
    assert nothing.calls == [] and "nothing to transcribe" in capsys.readouterr().out
    everything = FakeASR()
    result = transcribe.transcribe(small_dataset, "fake/v2", overwrite_transcripts=True, asr=everything)
    assert sum(n for n, _ in everything.calls) == 8 and result["train"]["transcript"][1] == "3200 samples"
    card = (small_dataset / "README.md").read_text()
    assert card.count("## Transcripts") == 1 and "of 8 rows was written by `fake/v2`" in card
    assert "## Statistics" in card


def test_multilingual_models_get_the_dataset_language(small_dataset):
    asr = FakeASR(multilingual=True)
    transcribe.transcribe(small_dataset, "fake/multilingual", asr=asr)
    assert asr.calls and all(
        kwargs["generate_kwargs"]["language"] == "en" and kwargs["generate_kwargs"]["task"] == "transcribe"
        for _, kwargs in asr.calls
    )


def test_transcripts_are_decoded_greedily_and_capped_by_the_clips_length(small_dataset):
    """Greedy decoding (the ASR pipeline's default is a 5-beam search) and a token cap that grows with
    the batch's longest clip (Whisper can loop on silence up to its 448 tokens)."""
    asr = FakeASR()
    transcribe.transcribe(small_dataset, "fake/model", batch_size=2, asr=asr)
    decoding = [kwargs["generate_kwargs"] for _, kwargs in asr.calls]
    assert all(d["num_beams"] == 1 and "language" not in d for d in decoding)
    # batches, longest clip: train (0.1, 0.3 s), (0.4 s); test (0.6, 0.7 s), (0.8 s); the cap is
    # Whisper's prompt (4) + 10 + 6 tokens per second of the longest clip, rounded up
    assert [d["max_length"] for d in decoding] == [4 + 10 + 2, 4 + 10 + 3, 4 + 10 + 5, 4 + 10 + 5]


def test_cli_arguments_reach_transcribe(monkeypatch):
    seen = {}
    monkeypatch.setattr(transcribe, "transcribe", lambda *a, **kw: seen.update(args=a, **kw))
    transcribe.main(["--dataset", "d", "--model", "m", "--batch_size", "3", "--overwrite_transcripts"])
    assert seen["args"] == ("d", "m") and seen["batch_size"] == 3 and seen["overwrite_transcripts"] is True


# Prompts with plain words (no digits, whose spelling Whisper may change) and several words each.
PROMPTS = (
    "agent-incorrect",
    "agent-newlocation",
    "agent-pass",
    "auth-incorrect",
    "cannot-complete-as-dialed",
    "check-number-dial-again",
)


@pytest.mark.slow
def test_whisper_tiny_transcribes_real_speech_and_resumes(whisper_tiny_dir, tmp_path):
    import torch

    sounds = tmp_path / "sounds"
    sounds.mkdir()
    for name in PROMPTS:
        shutil.copy(f"{asterisk_prompts.DEFAULT_SOUNDS_DIR}/{name}.wav", sounds / f"{name}.wav")
    built = asterisk_prompts.build(str(sounds), asterisk_prompts.DEFAULT_TRANSCRIPTS, test_fraction=0.0)
    references = dict(zip(built["train"]["utterance_id"], built["train"]["transcript"]))
    path = tmp_path / "asterisk"
    blank = built["train"].remove_columns("transcript").add_column("transcript", [""] * len(references))
    save_dataset_dict(datasets.DatasetDict({"train": blank}), path)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only contend on a busy CI runner
    try:
        asr = transcribe.make_pipeline(whisper_tiny_dir, device="cpu")
        calls = []

        def crash_after_first_batch(inputs, **kwargs):
            if calls:
                raise RuntimeError("killed after the first batch")
            calls.append(len(inputs))
            return asr(inputs, **kwargs)

        with pytest.raises(RuntimeError, match="killed"):
            transcribe.transcribe(
                path, "offline:whisper-tiny.en", batch_size=3, save_every=1, asr=crash_after_first_batch
            )
        saved = (path / transcribe.PROGRESS_FILE).read_text().splitlines()
        assert len(saved) == 1 + 3

        def counting(inputs, **kwargs):
            calls.append(len(inputs))
            return asr(inputs, **kwargs)

        result = transcribe.transcribe(path, "offline:whisper-tiny.en", batch_size=3, asr=counting)
    finally:
        torch.set_num_threads(threads)
    assert calls == [3, 3]  # the re-run did only the second batch
    hypotheses = dict(zip(result["train"]["utterance_id"], result["train"]["transcript"]))
    wer = word_error_rate([hypotheses[k] for k in references], list(references.values()))
    assert wer < 0.3, (wer, hypotheses)


def test_a_corrupt_row_is_named_and_can_be_skipped(tmp_path):
    features = ser_features(["neutral"])
    audio = [
        {"bytes": encode_wav(np.zeros(1600 * (i + 1), np.float32)), "path": f"u{i}.wav"} for i in range(4)
    ]
    audio[2] = {"bytes": b"this is not a wav file", "path": "u2.wav"}
    ds = datasets.Dataset.from_dict(
        {
            "audio": audio,
            "emotion": [0] * 4,
            "transcript": [""] * 4,
            "speaker_id": ["s"] * 4,
            "utterance_id": [f"u{i}" for i in range(4)],
        },
        features=features,
    )
    path = tmp_path / "ds"
    save_dataset_dict(datasets.DatasetDict({"train": ds}), path, card="# ds\n")
    with pytest.raises(ValueError, match=r"row 2 \(utterance_id 'u2'\).*--skip_bad"):
        transcribe.transcribe(path, "fake/model", batch_size=2, save_every=5, asr=FakeASR())
    # the batch finished before the bad row was kept: a re-run does not transcribe it again
    asr = FakeASR()
    result = transcribe.transcribe(path, "fake/model", batch_size=2, asr=asr, skip_bad=True)
    assert sum(n for n, _ in asr.calls) == 1  # only u3 was left to do
    assert result["train"]["transcript"] == ["1600 samples", "3200 samples", "", "6400 samples"]
