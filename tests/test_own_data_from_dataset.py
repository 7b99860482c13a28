"""python -m serhub.datasets_scripts.folder --dataset ...: a `datasets` dataset -> serhub's DatasetDict."""

import csv
import json
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
from serhub.datasets_scripts import folder, from_dataset
from serhub.datasets_scripts.common import read_manifest
from serhub.datasets_scripts.corpus_problems import CorpusError

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import make_encoder  # noqa: E402
from test_own_data import run_cli  # noqa: E402  (the builder's command, as a user runs it)

LABELS = ["neutral", "happy", "sad"]  # the ClassLabel's order, not sorted
SPEAKERS = [f"spk{i}" for i in range(6)]


def tone(pitch=220.0, rate=22050, seconds=0.2):
    t = np.arange(int(seconds * rate)) / rate
    return (0.2 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


def features():
    return datasets.Features(
        {
            "clip": datasets.Audio(),
            "mood": datasets.ClassLabel(names=LABELS),
            "who": datasets.Value("string"),
            "sentence": datasets.Value("string"),
        }
    )


def rows(speakers, takes=1):
    """One clip per speaker, label and take, at 22.05 kHz (resampled by the build)."""
    out = {"clip": [], "mood": [], "who": [], "sentence": []}
    for s in speakers:
        for e in range(len(LABELS)):
            for k in range(takes):
                out["clip"].append({"array": tone(200 + 60 * e), "sampling_rate": 22050})
                out["mood"].append(e)
                out["who"].append(s)
                out["sentence"].append(f"{s} says {k}")
    return datasets.Dataset.from_dict(out, features=features())


def speaker_disjoint(dd):
    speakers = [set(ds["speaker_id"]) for ds in dd.values()]
    return all(not (a & b) for i, a in enumerate(speakers) for b in speakers[i + 1 :])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A save_to_disk Dataset: an Audio column, a ClassLabel emotion, a speaker column (odd names)."""
    path = tmp_path_factory.mktemp("saved") / "my_saved"
    rows(SPEAKERS).save_to_disk(str(path))
    return path


@pytest.fixture(scope="module")
def built(saved, tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "data"
    folder.main(
        ["--dataset", str(saved), "--column_map", "emotion=mood,speaker=who,transcript=sentence",
         "--output_dir", str(out), "--num_workers", "1"]
    )  # fmt: skip
    return out


def test_saved_dataset_with_classlabel_builds_speaker_independent_splits(built):
    dd = datasets.load_from_disk(str(built))
    assert list(dd) == ["train", "validation", "test"] and speaker_disjoint(dd)
    assert sum(map(len, dd.values())) == 18 and set().union(*(ds["speaker_id"] for ds in dd.values())) == set(
        SPEAKERS
    )
    test = dd["test"]
    assert test.features["emotion"].names == LABELS  # the ClassLabel's names, in its order
    assert sorted(test["emotion"]) == [0, 1, 2] and test[0]["audio"]["sampling_rate"] == 16000
    assert test[0]["transcript"].startswith("spk") and test[0]["utterance_id"].startswith("train/")
    card = (built / "README.md").read_text()
    assert "folder --dataset DATASET --output_dir" in card and "--raw_dir" not in card
    assert "label=mood" in card and "speaker=who" in card and "speakers held out" in card
    assert read_manifest(built)["leakage"]["shared_speakers"]["count"] == 0


def test_the_output_is_what_recipes_read(built):
    from serhub.recipes.arguments import DataArguments
    from serhub.recipes.data import load_dataset_dict, require_splits, resolve_labels

    dd = load_dataset_dict(str(built))
    args = DataArguments(dataset_name_or_path=str(built))
    require_splits(dd, [args.train_split, args.eval_split, args.test_split])
    assert resolve_labels(dd, args) == LABELS
    assert {"audio", "emotion", "transcript", "speaker_id", "utterance_id"} <= set(dd["train"].column_names)
    assert dd["train"].features["audio"].sampling_rate == 16000


def test_a_recipe_trains_on_it(built, tmp_path):
    """Two steps of ssl_classifier on a tiny random Whisper encoder: --dataset_name_or_path OUT, unchanged."""
    from serhub.recipes import ssl_classifier

    make_encoder(tmp_path / "encoder", "whisper")
    out = tmp_path / "run"
    ssl_classifier.main(
        ["--encoder_name_or_path", str(tmp_path / "encoder"), "--dataset_name_or_path", str(built),
         "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "8", "--bootstrap", "10",
         "--head_hidden_size", "16"]
    )  # fmt: skip
    results = json.loads((out / "eval_results.json").read_text())["test"]
    test_clips = len(datasets.load_from_disk(str(built))["test"])
    assert results["labels"] == LABELS and results["num_samples"] == test_clips


@pytest.fixture()
def audiofolder(tmp_path):
    """``load_dataset("audiofolder")``'s layout: clips and a metadata.csv with file_name."""
    root = tmp_path / "af"
    table = []
    for s in SPEAKERS:
        (root / s).mkdir(parents=True)
        for e, label in enumerate(LABELS):
            sf.write(root / s / f"{label}.flac", tone(200 + 60 * e), 22050)
            table.append({"file_name": f"{s}/{label}.flac", "emotion": label, "speaker": s})
    return root, table


def write_csv(path, table):
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    return path


def test_audiofolder_with_metadata_and_a_broken_row(audiofolder, tmp_path, capsys):
    root, table = audiofolder
    (root / "spk0" / "broken.wav").write_bytes(b"RIFF....not audio")
    write_csv(
        root / "metadata.csv", [*table, {"file_name": "spk0/broken.wav", "emotion": "sad", "speaker": "spk0"}]
    )
    out = tmp_path / "out"
    code, _, err = run_cli(["--dataset", str(root), "--output_dir", str(out)], capsys)
    assert code == 1 and not out.exists() and "nothing was written" in err
    assert "unreadable or truncated audio (1)" in err and "(spk0/broken.wav)" in err and "train row " in err
    code, _, _ = run_cli(["--dataset", str(root), "--output_dir", str(out), "--skip_bad"], capsys)
    dd = datasets.load_from_disk(str(out))
    assert code == 0 and sum(map(len, dd.values())) == 18 and speaker_disjoint(dd)
    assert dd["train"].features["emotion"].names == sorted(LABELS)  # strings: sorted, as the folder builder
    assert "spk0/broken.wav" in (out / "README.md").read_text()  # the card lists the skipped row
    # clip ids are the files' names, as the folder builder gives them
    ids = {u for ds in dd.values() for u in ds["utterance_id"]}
    assert ids == {f"{s}/{label}" for s in SPEAKERS for label in LABELS}


def test_a_data_file_with_a_path_column_stays_in_its_folder(audiofolder):
    root, table = audiofolder
    sf.write(root.parent / "secret.wav", tone(), 16000)
    rows_ = [{"path": r["file_name"], "label": r["emotion"], "speaker": r["speaker"]} for r in table]
    data = write_csv(
        root / "labels.csv", [*rows_, {"path": "../secret.wav", "label": "sad", "speaker": "spk1"}]
    )
    with pytest.raises(
        CorpusError,
        match=r"train row 18: the audio file it names \(\.\./secret\.wav\) is outside the dataset's folder",
    ):
        from_dataset.build_with_report(str(data), num_workers=1)
    result = from_dataset.build_with_report(str(data), num_workers=1, skip_bad=True)
    assert sum(map(len, result.dataset_dict.values())) == 18


def test_a_column_map_naming_a_missing_column_lists_the_columns(saved, tmp_path, capsys):
    with pytest.raises(CorpusError) as error:
        from_dataset.build_with_report(str(saved), column_map="emotion=feeling,speaker=who", num_workers=1)
    message = str(error.value)
    assert "label column 'feeling' (--column_map / --label_column) is not a column" in message
    assert "The dataset's columns are ['clip', 'mood', 'who', 'sentence']" in message
    args = ["--dataset", str(saved), "--column_map", "mood=mood", "--output_dir", str(tmp_path / "o")]
    code, _, err = run_cli(args, capsys)
    assert code == 1 and not (tmp_path / "o").exists()
    assert "'mood=mood' is not ROLE=COLUMN with a known role; the roles are file, label" in err
    assert "The dataset's columns are ['clip', 'mood', 'who', 'sentence']" in err


def test_a_loading_script_is_refused_and_not_run(tmp_path, capsys):
    data = tmp_path / "scripted"
    data.mkdir()
    marker = tmp_path / "the-script-ran"
    (data / "scripted.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (data / "data.csv").write_text("path,label,speaker\na.wav,sad,x\n")
    for source in (data, data / "scripted.py"):
        code, _, err = run_cli(["--dataset", str(source), "--output_dir", str(tmp_path / "o")], capsys)
        assert (
            code == 1 and "is a dataset loading script; serhub does not run code that comes with data" in err
        )
    assert not marker.exists()


def test_an_uncached_hub_dataset_offline_is_one_clear_line(tmp_path, capsys):
    code, _, err = run_cli(
        ["--dataset", "someone/ser-corpus-nowhere", "--output_dir", str(tmp_path / "o")], capsys
    )
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: --dataset 'someone/ser-corpus-nowhere' is not a local folder or file")
    assert "not in the Hugging Face cache" in err and "HF_HUB_OFFLINE=1" in err and "--audio_dir DIR" in err


def test_keep_splits_keeps_them_and_still_checks_leaks(tmp_path, capsys):
    source = tmp_path / "split_source"
    datasets.DatasetDict(
        {"train": rows(SPEAKERS[:4]), "dev": rows(SPEAKERS[4:5], takes=2), "test": rows(["spk5", "spk0"])}
    ).save_to_disk(str(source))
    out = tmp_path / "kept"
    args = ["--dataset", str(source), "--column_map", "emotion=mood,speaker=who", "--output_dir", str(out)]
    with pytest.warns(UserWarning, match="share speakers: .*spk0 \\(train, test\\)"):
        code, _, _ = run_cli([*args, "--keep_splits"], capsys)
    dd = datasets.load_from_disk(str(out))
    assert code == 0 and {k: len(v) for k, v in dd.items()} == {"train": 12, "validation": 6, "test": 6}
    assert read_manifest(out)["leakage"]["shared_speakers"]["count"] == 1
    assert "--keep_splits" in (out / "README.md").read_text()
    code, _, err = run_cli([*args, "--keep_splits", "--dataset_split", "train,test", "--overwrite"], capsys)
    assert code == 1 and "--keep_splits needs one train, one validation and one test split" in err
    # without --keep_splits: the chosen splits pooled and split again by speaker
    code, _, _ = run_cli([*args, "--dataset_split", "train,dev", "--overwrite"], capsys)
    dd = datasets.load_from_disk(str(out))
    assert code == 0 and sum(map(len, dd.values())) == 18 and speaker_disjoint(dd)
    code, _, err = run_cli([*args, "--dataset_split", "train,other", "--overwrite"], capsys)
    assert code == 1 and "--dataset_split other: the dataset's splits are ['train', 'dev', 'test']" in err


def test_exactly_one_source(saved, tmp_path, capsys):
    code, _, err = run_cli(["--output_dir", str(tmp_path / "o")], capsys)
    assert code == 2 and "one of the arguments --audio_dir --dataset is required" in err
    code, _, err = run_cli(
        ["--dataset", str(saved), "--audio_dir", str(tmp_path), "--output_dir", "o"], capsys
    )
    assert code == 2 and "not allowed with argument" in err
    code, _, err = run_cli(["--audio_dir", str(tmp_path), "--keep_splits", "--output_dir", "o"], capsys)
    assert code == 2 and "--keep_splits go with --dataset" in err
