"""The real-corpus builders, run on tiny raw folders in each distributor's layout (corpus_fixtures):
parsing, labels and label sets, splits, cards, and bad input reported all at once."""

import io
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

import corpus_fixtures as cf
import datasets
import numpy as np
import pytest
import soundfile as sf
from serhub.datasets_scripts import corpus_files, crema_d, emospeech, iemocap, meld, msp_podcast, ravdess
from serhub.datasets_scripts import corpus_tools as ct
from serhub.datasets_scripts.common import SAMPLING_RATE, check_speaker_independent


@dataclass
class Case:
    module: ModuleType
    make: Callable  # corpus_fixtures.make_<corpus>
    brk: Callable  # corpus_fixtures.break_<corpus>
    splits: dict[str, int]  # rows per split of the default (native) build
    seconds: float  # duration of every clip
    kwargs: dict = field(default_factory=dict)
    tolerance: int = 2  # in samples (AAC in mp4 pads the last 1024-sample frame)


CASES = {
    "msp_podcast": Case(
        msp_podcast,
        cf.make_msp_podcast,
        cf.break_msp_podcast,
        {"train": 4, "validation": 2, "test1": 2, "test2": 2},
        0.25,
    ),
    "iemocap": Case(
        iemocap, cf.make_iemocap, cf.break_iemocap, {"train": 8, "validation": 2, "test": 3}, 0.25
    ),
    "meld": Case(
        meld, cf.make_meld, cf.break_meld, {"train": 3, "validation": 2, "test": 2}, 0.3, tolerance=400
    ),
    "emospeech": Case(
        emospeech,
        cf.make_emospeech,
        cf.break_emospeech,
        {"train": 12, "validation": 6, "test": 3},
        0.25,
        {"validation_fraction": 1 / 3},
    ),
    "ravdess": Case(
        ravdess, cf.make_ravdess, cf.break_ravdess, {"train": 40, "validation": 4, "test": 4}, 0.2
    ),
    "crema_d": Case(
        crema_d, cf.make_crema_d, cf.break_crema_d, {"train": 16, "validation": 2, "test": 2}, 0.25
    ),
}
NAMES = list(CASES)


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # unknown speakers: asserted where it matters
        yield
    datasets.enable_progress_bars()


@pytest.fixture(scope="session")
def raw_corpora(tmp_path_factory):
    return {name: case.make(tmp_path_factory.mktemp(name)) for name, case in CASES.items()}


@pytest.fixture(scope="session")
def built(raw_corpora):
    """The default build of every corpus, shared by the tests that only read it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return {
            name: CASES[name].module.build_with_report(raw_corpora[name], **CASES[name].kwargs)
            for name in NAMES
        }


@pytest.fixture
def broken(raw_corpora, tmp_path, request):
    """A copy of a corpus with one problem of each kind it can have."""
    name = request.param
    raw = tmp_path / raw_corpora[name].name
    shutil.copytree(raw_corpora[name], raw)
    return name, raw, CASES[name].brk(raw)


def rows(dataset_dict) -> dict[str, dict]:
    """``{utterance_id: row}`` over all splits, audio as raw bytes, with the split added."""
    found = {}
    for split, ds in dataset_dict.items():
        for row in ds.cast_column("audio", datasets.Audio(decode=False)):
            found[row["utterance_id"]] = {**row, "split": split}
    return found


def decoded_length(row) -> int:
    data, sr = sf.read(io.BytesIO(row["audio"]["bytes"]))
    assert sr == SAMPLING_RATE
    return len(data)


# ----------------------------------------------------------------------------- every builder


@pytest.mark.parametrize("name", NAMES)
def test_builds_the_real_layout(name, built):
    case, result = CASES[name], built[name]
    dd = result.dataset_dict
    assert {split: len(ds) for split, ds in dd.items()} == case.splits
    native = [n for n in case.module.LABELS.values() if n not in case.module.SPEC.excluded_by_default]
    for ds in dd.values():
        assert ds.column_names[:5] == ["audio", "emotion", "transcript", "speaker_id", "utterance_id"]
        assert ds.features["emotion"].names == native  # the corpus' own classes, in its order
        assert ds.features["audio"].sampling_rate == SAMPLING_RATE
        assert set(ds["language"]) == {case.module.SPEC.language}
    every = rows(dd)
    assert len(every) == sum(case.splits.values())  # utterance ids are unique across splits
    for row in list(every.values())[:3]:  # resampled to 16 kHz, duration kept
        assert abs(decoded_length(row) - case.seconds * SAMPLING_RATE) <= case.tolerance
    if case.module.SPEC.speaker_splits == "ours":
        check_speaker_independent(dd)


@pytest.mark.parametrize("name", NAMES)
def test_shared_label_set_maps_every_class(name, raw_corpora, built):
    case = CASES[name]
    mapped = case.module.build_with_report(raw_corpora[name], label_set="6", **case.kwargs).dataset_dict
    native = built[name].dataset_dict
    for split, ds in mapped.items():
        assert ds.features["emotion"].names == list(ct.LABEL_SETS["6"])
        assert ds.features["native_emotion"].names == native[split].features["emotion"].names
        for shared, own in zip(ds["emotion"], ds["native_emotion"]):
            if shared == -1:
                continue
            own_name = ds.features["native_emotion"].names[own]
            assert case.module.TO_SHARED[own_name] == ds.features["emotion"].names[shared]
    kept = sum(len(ds) for ds in mapped.values())
    dropped = {n for n, s in case.module.TO_SHARED.items() if s not in ct.LABEL_SETS["6"]}
    unmapped = set(case.module.LABELS.values()) - set(case.module.TO_SHARED)
    expected = sum(
        1
        for row in rows(native).values()
        if row["emotion"] == -1
        or native["train"].features["emotion"].names[row["emotion"]] not in dropped | unmapped
    )
    assert kept == expected


@pytest.mark.parametrize("name", NAMES)
def test_cli_writes_dataset_and_card(name, raw_corpora, tmp_path, capsys):
    case, out = CASES[name], tmp_path / "out"
    extra = ["--validation_fraction", str(case.kwargs["validation_fraction"])] if case.kwargs else []
    case.module.main(["--raw_dir", str(raw_corpora[name]), "--output_dir", str(out), *extra])
    printed = capsys.readouterr().out
    assert "| class |" in printed and "saved to" in printed
    loaded = datasets.load_from_disk(str(out))
    assert {split: len(ds) for split, ds in loaded.items()} == case.splits
    card = (out / "README.md").read_text()
    spec = case.module.SPEC
    assert card.startswith(f"---\nlicense: {spec.license}\n")
    assert "## Licence" in card and "## Citation" in card and "@" in card.split("## Citation")[1]
    assert "## Statistics" in card and "| total" in card
    assert f"python -m serhub.datasets_scripts.{spec.module}" in card
    with pytest.raises(FileExistsError, match="--overwrite"):
        case.module.main(["--raw_dir", str(raw_corpora[name]), "--output_dir", str(out), *extra])


@pytest.mark.parametrize("broken", NAMES, indirect=True)
def test_bad_input_is_reported_at_once_and_nothing_written(broken, tmp_path, capsys):
    name, raw, breakage = broken
    case = CASES[name]
    with pytest.raises(ct.CorpusError) as caught:
        case.module.build_with_report(raw, **case.kwargs)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    for expected in [*breakage.named, *breakage.kinds]:
        assert expected in message, f"{expected!r} not in:\n{message}"
    assert {p.kind for p in caught.value.problems} == breakage.kinds
    assert "--skip_bad" in message
    out = tmp_path / "out"
    extra = ["--validation_fraction", str(case.kwargs["validation_fraction"])] if case.kwargs else []
    with pytest.raises(SystemExit) as exit_info:
        case.module.main(["--raw_dir", str(raw), "--output_dir", str(out), *extra])
    assert exit_info.value.code == 1 and breakage.named[0] in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # nothing written, no temporary left


@pytest.mark.parametrize("broken", NAMES, indirect=True)
def test_skip_bad_leaves_out_bad_items_and_the_card_says_why(broken, tmp_path):
    name, raw, breakage = broken
    case, out = CASES[name], tmp_path / "out"
    extra = ["--validation_fraction", str(case.kwargs["validation_fraction"])] if case.kwargs else []
    case.module.main(["--raw_dir", str(raw), "--output_dir", str(out), "--skip_bad", *extra])
    kept = {u for ds in datasets.load_from_disk(str(out)).values() for u in ds["utterance_id"]}
    assert kept and not kept & breakage.dropped
    card = (out / "README.md").read_text()
    skipped = card.split("## Skipped items")[1].split("## Statistics")[0]
    assert "problem(s) were found and the affected utterances left out (--skip_bad)" in skipped
    for expected in [*breakage.named, *breakage.kinds]:
        assert expected in skipped


@pytest.mark.parametrize("name", NAMES)
def test_wrong_raw_dir_says_what_is_expected(name, raw_corpora, tmp_path):
    case = CASES[name]
    with pytest.raises(ct.CorpusError, match="does not exist"):
        case.module.build(tmp_path / "nowhere", **case.kwargs)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ct.CorpusError, match=r"wrong --raw_dir.*\n.*not found") as caught:
        case.module.build(tmp_path / "empty", **case.kwargs)
    assert case.module.SPEC.name in str(caught.value) and "Point --raw_dir at" in str(caught.value)
    parent = raw_corpora[name].parent  # one level too high: the error points at the right folder
    if name == "ravdess":  # Actor_NN folders are also found one level down (zip extracted into a folder)
        assert len(case.module.build(parent)["train"]) == case.splits["train"]
        return
    with pytest.raises(ct.CorpusError, match=f"Did you mean --raw_dir {raw_corpora[name]}"):
        case.module.build(parent, **case.kwargs)


def test_audio_is_decoded_once_and_cached(raw_corpora, built, monkeypatch):
    def no_decoding(path):
        raise AssertionError(f"{path} decoded again")

    monkeypatch.setattr(corpus_files, "_encode", no_decoding)
    again = crema_d.build(raw_corpora["crema_d"])  # same files: the Arrow cache is reused
    assert rows(again).keys() == rows(built["crema_d"].dataset_dict).keys()


def test_missing_ffmpeg_is_explained(raw_corpora, monkeypatch):
    monkeypatch.setattr(ct.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-get install ffmpeg"):
        meld.build(raw_corpora["meld"])


def test_label_file_with_wrong_columns_is_fatal_even_with_skip_bad(raw_corpora, tmp_path):
    raw = tmp_path / "msp"
    shutil.copytree(raw_corpora["msp_podcast"], raw)
    labels = raw / "Labels" / "labels_consensus.csv"
    labels.write_text(labels.read_text().replace("EmoClass", "Emotion", 1))
    with pytest.raises(ct.CorpusError, match=r"(?s)missing EmoClass \(found: FileName, Emotion") as caught:
        msp_podcast.build(raw, skip_bad=True)
    assert "not in the format the distributor ships" in str(caught.value)


def test_push_to_hub_uploads_card_then_data_privately(built, monkeypatch):
    import huggingface_hub

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))

        def upload_file(self, **kwargs):
            calls.append(("upload_file", kwargs["path_in_repo"], kwargs["path_or_fileobj"][:3]))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(
        datasets.DatasetDict, "push_to_hub", lambda self, repo, **kw: calls.append(("push", repo, kw))
    )
    result = built["ravdess"]
    ct.push_to_hub(result.dataset_dict, "me/ravdess", result.card())
    assert calls == [
        ("create_repo", "me/ravdess", {"repo_type": "dataset", "private": True, "exist_ok": True}),
        ("upload_file", "README.md", b"---"),
        ("push", "me/ravdess", {"private": True}),
    ]


def test_wav_truncation_reads_the_header(tmp_path):
    path = cf.write_tone(tmp_path / "a.wav")
    assert ct.wav_truncation(path) is None
    cf.truncate(path)
    assert "declares 8000 bytes" in ct.wav_truncation(path)
    assert ct.wav_truncation(cf.write_tone(tmp_path / "b.flac")) is None  # not a WAV: libsndfile judges


# ----------------------------------------------------------------------------- per corpus


def test_msp_podcast_fields_and_challenge_labels(raw_corpora, built):
    result = built["msp_podcast"]
    every = rows(result.dataset_dict)
    first = every["MSP-PODCAST_0001_0008"]
    assert first["split"] == "train" and first["speaker_id"] == "127" and first["gender"] == "male"
    assert (first["arousal"], first["valence"], first["dominance"]) == pytest.approx((5.8, 2.2, 5.4))
    assert first["transcript"] == "I can't believe you did that."
    assert every["MSP-PODCAST_0004_0001"]["speaker_id"] == "unknown-MSP-PODCAST_0004_0001"
    assert every["MSP-PODCAST_0004_0001"]["gender"] is None
    withheld = every["MSP-PODCAST_0007_0001"]
    assert withheld["emotion"] == -1 and withheld["arousal"] is None
    assert "MSP-PODCAST_0002_0007" not in every and "MSP-PODCAST_0003_0002" not in every  # X and O
    assert sorted(result.excluded.values()) == [1, 1]
    assert "no_agreement" in result.card() and "Left out by design" in result.card()
    with pytest.warns(UserWarning, match="1 utterance without a speaker id"):
        kept = msp_podcast.build(raw_corpora["msp_podcast"], keep_all_labels=True)
    assert kept["train"].features["emotion"].names[-2:] == ["other", "no_agreement"]
    assert len(kept["train"]) == 5 and len(kept["validation"]) == 3


def test_iemocap_fields_label_sets_and_sessions(raw_corpora, built):
    every = rows(built["iemocap"].dataset_dict)
    scripted = every["Ses02M_script01_1_F000"]  # the speaker is the F of F000, not the M of Ses02M
    assert scripted["speaker_id"] == "Ses02F" and scripted["gender"] == "female"
    assert scripted["transcript"] == "What a lovely day." and scripted["dialog"] == "Ses02M_script01_1"
    assert (scripted["valence"], scripted["arousal"], scripted["dominance"]) == (4.5, 3.5, 3.0)  # [V, A, D]
    assert {r["split"] for r in every.values() if r["speaker_id"].startswith("Ses05")} == {"test"}
    assert "Ses01F_impro01_M001" not in every  # xxx: no agreement
    raw = raw_corpora["iemocap"]
    four = iemocap.build(raw, label_set="4")
    assert four["train"].features["emotion"].names == ["neutral", "happy", "sad", "angry"]
    assert "Ses01F_impro01_F001" not in rows(four)  # excited is not happy unless merged
    merged = rows(iemocap.build(raw, label_set="4", merge_excited=True))
    assert merged["Ses01F_impro01_F001"]["emotion"] == 1  # happy
    with pytest.raises(ValueError, match="merge_excited"):
        iemocap.build(raw, merge_excited=True)
    folds = iemocap.leave_one_session_out(built["iemocap"].dataset_dict)
    assert sorted(folds) == [1, 2, 3, 4, 5]
    for session, fold in folds.items():
        assert {iemocap.session_of(s) for s in fold["test"]["speaker_id"]} == {session}
        assert session not in {iemocap.session_of(s) for s in fold["train"]["speaker_id"]}
        assert len(fold["train"]) + len(fold["test"]) == 13
    other = iemocap.build(raw, test_session=1, validation_session=2)
    assert set(other["test"]["speaker_id"]) == {"Ses01F", "Ses01M"}


def test_meld_fields(built):
    every = rows(built["meld"].dataset_dict)
    first = every["train_dia0_utt0"]
    # the CSV's \x92 (Windows-1252 for \u2019) is repaired
    assert first["transcript"] == "also I was the point person on my company\u2019s transition."
    assert first["speaker_id"] == "Chandler" and first["dialogue_id"] == "train_dia0"
    features = built["meld"].dataset_dict["train"].features
    assert features["sentiment"].names[first["sentiment"]] == "neutral"
    assert every["validation_dia0_utt0"]["transcript"] == "Oh my God, he\u2019s lost it."
    assert every["test_dia0_utt1"]["speaker_id"] == "Rachel"  # media one folder down
    assert decoded_length(every["validation_dia0_utt1"]) == int(0.3 * SAMPLING_RATE)  # the .wav conversion


def test_emospeech_fields(built):
    result = built["emospeech"]
    dd = result.dataset_dict
    every = rows(dd)
    first = every["00000000-00000000"]
    assert first["transcript"].startswith("Pedimos que") and first["language"] == "es"
    assert set(dd["test"]["emotion"]) == {-1}  # the public test file has no labels
    assert sorted(dd["validation"]["emotion"]) == list(range(6))  # stratified hold-out
    assert all(s.startswith("unknown-") for ds in dd.values() for s in ds["speaker_id"])
    assert any("without a speaker id" in note for note in result.notes)


def test_ravdess_fields_and_song(raw_corpora, built):
    result = built["ravdess"]
    every = rows(result.dataset_dict)
    name = cf.ravdess_name(emotion=1 + (3 + 3) % 8, actor=3, intensity=2, statement=2)[:-4]
    row = every[name]
    assert row["speaker_id"] == "Actor_03" and row["gender"] == "male"
    assert row["transcript"] == "Dogs are sitting by the door"
    assert result.dataset_dict["train"].features["intensity"].names[row["intensity"]] == "strong"
    held = {s: {r["speaker_id"] for r in every.values() if r["split"] == s} for s in ("validation", "test")}
    for actors in held.values():  # two actors each, one man and one woman
        assert len(actors) == 2 and {int(a[-2:]) % 2 for a in actors} == {0, 1}
    assert list(result.excluded.values()) == [1]  # the song file
    with_song = rows(ravdess.build(raw_corpora["ravdess"], include_song=True))
    assert with_song[cf.ravdess_name(3, 1, channel=2)[:-4]]["vocal_channel"] == 1


def test_crema_d_fields(built):
    result = built["crema_d"]
    every = rows(result.dataset_dict)
    row = every["1001_IEO_ANG_HI"]
    assert row["speaker_id"] == "1001" and row["gender"] == "female"  # from VideoDemographics.csv
    assert row["transcript"] == "It's eleven o'clock."
    assert result.dataset_dict["train"].features["intensity"].names[row["intensity"]] == "high"
    assert any("speakers held out" in note for note in result.notes)
    assert np.mean([r["gender"] == "male" for r in every.values()]) == 0.5


def test_emospeech_audio_found_twice_is_ambiguous(raw_corpora, tmp_path):
    raw = tmp_path / "emospeech"
    shutil.copytree(raw_corpora["emospeech"], raw)
    (raw / "old").mkdir()
    shutil.copy(raw / "segments" / cf.emospeech_id(4), raw / "old" / cf.emospeech_id(4))
    with pytest.raises(ct.CorpusError, match=f"2 audio files are named {cf.emospeech_id(4)}: old/"):
        emospeech.build(raw, validation_fraction=1 / 3)
