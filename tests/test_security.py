"""What a stranger's input must never do: run its own code (a model folder's ``auto_map``), read
files outside the folder it names (corpus label files, ffmpeg protocols), unpickle code from a run
folder, or hide outputs from other users. Each case builds the attack and checks it fails."""

import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_speech_emotion import make  # noqa: E402

MARKER = "SERHUB_TEST_PWNED"


def _evil_module(folder: Path, marker: Path, name: str = "evil_code") -> None:
    """A Python file that leaves ``marker`` behind when anything imports it."""
    (folder / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            Path({str(marker)!r}).write_text("ran")
            from transformers import PretrainedConfig, PreTrainedModel
            class EvilConfig(PretrainedConfig):
                model_type = "evil"
            class EvilModel(PreTrainedModel):
                config_class = EvilConfig
            """
        )
    )


@pytest.fixture
def foreign_model(tmp_path):
    """A folder as a visitor would upload it: config.json whose auto_map points at its own code."""
    folder, marker = tmp_path / "upload", tmp_path / MARKER
    folder.mkdir()
    _evil_module(folder, marker)
    auto_map = {
        "AutoConfig": "evil_code.EvilConfig",
        "AutoModel": "evil_code.EvilModel",
        "AutoModelForAudioClassification": "evil_code.EvilModel",
        "AutoModelForCausalLM": "evil_code.EvilModel",
        "AutoProcessor": "evil_code.EvilModel",
    }
    (folder / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": auto_map}))
    return folder, marker


@pytest.fixture
def serhub_model_with_rewritten_code(tmp_path):
    """A real serhub classifier whose copied remote-code file was replaced by an attacker's: the
    model type is serhub's, so it loads, but with serhub's installed classes, not the folder's."""
    folder, marker = tmp_path / "model", tmp_path / MARKER
    model, fe = make("whisper")
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    code = folder / "modeling_speech_emotion.py"
    assert code.is_file()  # save_pretrained copied serhub's code into the folder
    code.write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n" + code.read_text())
    return folder, marker


def test_timeline_refuses_a_model_that_brings_its_own_code(foreign_model):
    from serhub.modeling.remote_code import UntrustedModelError

    from serhub.loading import load_answer_writer, load_classifier

    folder, marker = foreign_model
    with pytest.raises(UntrustedModelError, match="model_type 'evil'.*does not run code"):
        load_classifier(folder)
    with pytest.raises(UntrustedModelError):
        load_answer_writer(folder)
    assert not marker.exists()


def test_serhub_type_loads_serhubs_classes_not_the_folders_code(serhub_model_with_rewritten_code):
    from serhub.loading import load_answer_writer, load_classifier

    folder, marker = serhub_model_with_rewritten_code
    classifier = load_classifier(folder)
    scores = classifier(np.zeros(16000, np.float32), top_k=None)
    assert sorted(s["label"] for s in scores) == ["happy", "neutral", "sad"]
    assert load_answer_writer(folder) is None  # a classifier writes no answers
    assert not marker.exists()
    assert type(classifier.model).__module__ == "serhub.modeling.modeling_speech_emotion"


def test_ensemble_member_with_its_own_code_is_refused(foreign_model, tmp_path):
    from serhub.modeling import EnsembleConfig, EnsembleForAudioClassification

    folder, marker = foreign_model
    config = EnsembleConfig(
        members=[{"name": "m", "model": str(folder), "input": "audio"}], labels=["a", "b"]
    )
    config.save_pretrained(tmp_path / "ensemble")
    with pytest.raises(ValueError, match="does not run code"):
        EnsembleForAudioClassification.from_pretrained(tmp_path / "ensemble")
    assert not marker.exists()


def test_plain_encoder_is_not_taken_for_an_emotion_model(tmp_path):
    """W4/W5: a Whisper folder has no emotion head; a random one would answer LABEL_0 / LABEL_1."""
    from transformers import WhisperConfig, WhisperModel

    from serhub.loading import load_classifier

    WhisperModel(WhisperConfig(d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                               decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                               vocab_size=64, num_mel_bins=16, max_source_positions=50, pad_token_id=0,
                               bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)).save_pretrained(tmp_path / "w")  # fmt: skip
    with pytest.raises(ValueError, match="not an audio classifier"):
        load_classifier(tmp_path / "w")


# ----------------------------------------------------------------------------- corpus builders (S8)


def test_label_files_cannot_pull_files_from_outside_the_corpus(tmp_path):
    import corpus_fixtures as cf
    from serhub.datasets_scripts import corpus_tools as ct
    from serhub.datasets_scripts import emospeech, msp_podcast

    secret = cf.write_tone(tmp_path / "secret.wav", freq=440.0)  # a file beside the corpus, not in it
    raw = cf.make_msp_podcast(tmp_path / "msp")
    clean = {uid for split in msp_podcast.build(raw).values() for uid in split["utterance_id"]}
    labels = raw / "Labels" / "labels_consensus.csv"
    text = labels.read_text()
    text = text.replace("MSP-PODCAST_0001_0008.wav,", "../../../secret.wav,")
    text = text.replace("MSP-PODCAST_0002_0003.wav,", f"{secret},")  # an absolute path
    labels.write_text(text)
    with pytest.raises(ct.CorpusError, match="outside --raw_dir") as caught:
        msp_podcast.build(raw)
    assert str(caught.value).count("file outside the corpus folder") == 1
    assert "line 2" in str(caught.value) and "line 4" in str(caught.value)
    built = msp_podcast.build(raw, skip_bad=True)
    ids = {uid for split in built.values() for uid in split["utterance_id"]}
    assert ids == clean - {"MSP-PODCAST_0001_0008", "MSP-PODCAST_0002_0003"} and "secret" not in ids

    raw = cf.make_emospeech(tmp_path / "es")
    train = raw / "EmoSPeech_phase_2_train.csv"
    train.write_text(train.read_text(encoding="utf-8").replace(cf.emospeech_id(0), "../../secret.wav"))
    with pytest.raises(ct.CorpusError, match="outside --raw_dir"):
        emospeech.build(raw)


def test_a_corpus_folder_linked_from_another_disk_still_builds(tmp_path):
    import corpus_fixtures as cf
    from serhub.datasets_scripts import msp_podcast

    raw = cf.make_msp_podcast(tmp_path / "msp")
    elsewhere = tmp_path / "disk2" / "Audios"
    elsewhere.parent.mkdir()
    clean = sum(len(split) for split in msp_podcast.build(raw).values())
    (raw / "Audios").rename(elsewhere)
    (raw / "Audios").symlink_to(elsewhere)  # the usual way to keep audio on a bigger disk
    assert sum(len(split) for split in msp_podcast.build(raw).values()) == clean


# ----------------------------------------------------------------------------- files and processes


def test_written_files_honour_the_umask(tmp_path):
    """W12: saved models, cards and timelines are readable by the group/others the umask allows."""
    from serhub.modeling.file_utils import atomic_output_dir, atomic_write

    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "card.md", lambda tmp: tmp.write_text("hello"))
        with atomic_output_dir(tmp_path / "out") as out:
            (out / "x").write_text("y")
        os.umask(0o077)
        private = atomic_write(tmp_path / "private.md", lambda tmp: tmp.write_text("hello"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "name", ["http:x.wav", "concat:a.wav|b.wav", "-x.wav", "subfile,,start,0,end,0,,:a.wav"]
)
def test_ffmpeg_reads_a_file_name_as_a_file(tmp_path, monkeypatch, name):
    """S6/C1: a local file whose name looks like an ffmpeg protocol or option is read as that file,
    and nothing else (no network lookup, no other file)."""
    import soundfile as sf

    from serhub.audio_io import duration, stream_audio

    monkeypatch.chdir(tmp_path)
    tone = np.sin(2 * np.pi * 220 * np.arange(8000) / 16000).astype(np.float32) * 0.5
    sf.write(tmp_path / "a.wav", tone, 16000)
    sf.write(tmp_path / "b.wav", tone, 16000)
    sf.write(tmp_path / name, np.zeros(4000, np.float32), 16000)  # the file the user means: 0.25 s of silence
    samples = np.concatenate(list(stream_audio(name)))
    assert len(samples) == 4000 and np.abs(samples).max() == 0
    assert duration(name) == pytest.approx(0.25, abs=0.01)


def test_ffmpeg_protocol_names_of_files_that_do_not_exist_are_refused(tmp_path, monkeypatch):
    from serhub.audio_io import stream_audio

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.wav").write_bytes(b"")
    for name in ("http://127.0.0.1:9/x.wav", "concat:a.wav|a.wav"):
        with pytest.raises(FileNotFoundError):
            next(stream_audio(name))


def test_graph_fusion_feature_cache_cannot_run_code(tmp_path):
    """S7: a run folder received from someone else holds pickles; loading them runs no code."""
    import pickle

    import torch
    from serhub.recipes.graph_fusion import frozen_features, safe_split_name

    marker = tmp_path / MARKER

    class Payload:
        def __reduce__(self):
            return (Path(marker).write_text, ("ran",))

    key = "0" * 16
    (tmp_path / "features").mkdir()
    with open(tmp_path / "features" / f"test-{key}.pt", "wb") as f:
        pickle.dump({"labels": Payload()}, f)
    with pytest.raises(pickle.UnpicklingError):
        frozen_features(None, None, None, {"test": "test"}, key, None, "emotion", [], tmp_path, 1)
    assert not marker.exists()
    torch.save({"labels": torch.tensor([1, 2]), "log_mel": [torch.zeros(2, 3)], "transcripts": ["a"]},
               tmp_path / "features" / f"test-{key}.pt")  # fmt: skip
    cache = frozen_features(None, None, None, {"test": "test"}, key, None, "emotion", [], tmp_path, 1)
    assert cache["test"]["transcripts"] == ["a"]
    for bad in ("../x", "a/b", "..", ""):
        with pytest.raises(ValueError, match="split name"):
            safe_split_name(bad)
