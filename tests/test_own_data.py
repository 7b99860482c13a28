"""python -m serhub.datasets_scripts.folder: a folder of clips and a label table -> serhub's DatasetDict."""

import csv
import json
import warnings

import datasets
import numpy as np
import pytest
import soundfile as sf
from serhub.datasets_scripts import folder
from serhub.datasets_scripts.corpus_problems import CorpusError

LABELS = ["happy", "neutral", "sad"]
SPEAKERS = [f"spk{i}" for i in range(6)]


def tone(seconds=0.25, rate=16000, pitch=220.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.2 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


def make_clips(root, formats=("wav", "flac")):
    """6 speakers x 3 labels x 2 clips, in mixed formats and sampling rates; the table's rows."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for s, speaker in enumerate(SPEAKERS):
        for e, label in enumerate(LABELS):
            for k in range(2):
                suffix = formats[(s + k) % len(formats)]
                name = f"{speaker}/{label}_{k}.{suffix}"
                (root / speaker).mkdir(exist_ok=True)
                rate = 16000 if suffix == "wav" else 22050
                sf.write(root / name, tone(rate=rate, pitch=200 + 60 * e), rate)
                gender = "female" if s % 2 else "male"
                rows.append(
                    {"file": name, "emotion": label, "speaker": speaker, "gender": gender, "text": "hi"}
                )
    return rows


def write_table(path, rows, kind="csv"):
    if kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t" if kind == "tsv" else ",")
        writer.writeheader()
        writer.writerows(rows)
    return path


def run_cli(args, capsys):
    """The command as a user runs it: (exit code, stdout, stderr)."""
    code = 0
    try:
        folder.main([*args, "--num_workers", "1"])
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("own") / "audio"
    return root, make_clips(root)


@pytest.fixture(scope="module")
def built(clips, tmp_path_factory):
    root, rows = clips
    table = write_table(root.parent / "labels.csv", rows)
    out = tmp_path_factory.mktemp("built") / "data"
    folder.main(
        ["--audio_dir", str(root), "--metadata", str(table), "--output_dir", str(out), "--num_workers", "1"]
    )
    return out


def test_csv_builds_speaker_independent_splits_and_a_card(built):
    dd = datasets.load_from_disk(str(built))
    assert list(dd) == ["train", "validation", "test"]
    assert sum(len(ds) for ds in dd.values()) == 36
    speakers = [set(ds["speaker_id"]) for ds in dd.values()]
    assert all(not (a & b) for i, a in enumerate(speakers) for b in speakers[i + 1 :])
    assert set().union(*speakers) == set(SPEAKERS)
    test = dd["test"]
    assert test.features["emotion"].names == LABELS
    assert {"gender", "transcript", "utterance_id", "language"} <= set(test.column_names)
    assert set(test["transcript"]) == {"hi"} and test[0]["audio"]["sampling_rate"] == 16000
    card = (built / "README.md").read_text()
    assert "python -m serhub.datasets_scripts.folder --audio_dir AUDIO" in card and "--raw_dir" not in card
    assert "clips per label: happy 12, neutral 12, sad 12" in card and "speakers held out" in card


def test_every_recipe_loads_it_unchanged(built):
    from serhub.recipes.arguments import DataArguments
    from serhub.recipes.data import load_dataset_dict, require_splits, resolve_labels

    dd = load_dataset_dict(str(built))
    args = DataArguments(dataset_name_or_path=str(built))
    require_splits(dd, [args.train_split, args.eval_split, args.test_split])
    assert resolve_labels(dd, args) == LABELS


@pytest.mark.parametrize(
    "kind, rename",
    [
        ("tsv", {"file": "path", "emotion": "Label", "speaker": "speaker_id"}),
        ("jsonl", {"file": "file_name", "emotion": "emotion", "speaker": "Actor"}),
    ],
)
def test_tsv_and_jsonl_with_guessed_columns(clips, tmp_path, kind, rename):
    root, rows = clips
    renamed = [{rename.get(k, k): v for k, v in r.items()} | {"arousal": 0.5} for r in rows]
    table = write_table(tmp_path / f"labels.{kind}", renamed, kind)
    result = folder.build_with_report(root, table, num_workers=1)
    dd = result.dataset_dict
    assert sum(len(ds) for ds in dd.values()) == 36 and dd["train"].features["emotion"].names == LABELS
    assert set(dd["train"]["arousal"]) == {0.5}  # guessed, and in the schema as a float
    assert f"label={rename['emotion']}" in result.card() and f"speaker={rename['speaker']}" in result.card()


def test_named_columns_and_a_wrong_name(clips, tmp_path):
    root, rows = clips
    table = write_table(
        tmp_path / "t.csv", [{"clip": r["file"], "mood": r["emotion"], "who": r["speaker"]} for r in rows]
    )
    with pytest.raises(
        CorpusError, match=r"no file column; expected one named file / file_name.*Name it with --file_column"
    ):
        folder.build_with_report(root, table, num_workers=1)
    with pytest.raises(
        CorpusError,
        match=r"--label_column 'feeling' is not a column; the columns are \['clip', 'mood', 'who'\]",
    ):
        folder.build_with_report(root, table, columns={"file": "clip", "label": "feeling"}, num_workers=1)
    columns = {"file": "clip", "label": "mood", "speaker": "who"}
    dd = folder.build(root, table, columns=columns, labels=["sad", "neutral", "happy"], num_workers=1)
    assert dd["train"].features["emotion"].names == ["sad", "neutral", "happy"]  # --labels keeps its order


def test_problems_are_reported_by_name_and_nothing_written(clips, tmp_path, capsys):
    root, rows = clips
    (root / "broken.wav").write_bytes(b"RIFF....not audio")
    bad = [
        *rows,
        {"file": "missing.wav", "emotion": "sad", "speaker": "spk0", "gender": "male", "text": ""},
        {"file": "broken.wav", "emotion": "sad", "speaker": "spk0", "gender": "male", "text": ""},
        {**rows[6], "emotion": ""},
        {**rows[12], "emotion": "bored"},
    ]
    table = write_table(tmp_path / "labels.csv", bad)
    out = tmp_path / "out"
    args = [
        "--audio_dir",
        str(root),
        "--metadata",
        str(table),
        "--output_dir",
        str(out),
        "--labels",
        "happy,neutral,sad",
    ]
    code, _, err = run_cli(args, capsys)
    assert code == 1 and not out.exists() and "nothing was written" in err
    assert "missing.wav: listed in labels.csv line" in err
    assert "broken.wav" in err and "unreadable or truncated audio" in err
    assert f"labels.csv line 40: {rows[6]['file']} has an empty 'emotion' cell" in err
    assert "labels.csv line 41: label 'bored' is unknown" in err and "--skip_bad" in err
    code, out_text, _ = run_cli([*args, "--skip_bad"], capsys)
    assert code == 0 and "saved to" in out_text
    card = (out / "README.md").read_text()
    assert "## Skipped items" in card and "missing.wav" in card and "broken.wav" in card
    assert (
        sum(len(ds) for ds in datasets.load_from_disk(str(out)).values()) == 36 - 4 + 2
    )  # the last two rows repeat files
    (root / "broken.wav").unlink()


def test_files_outside_the_audio_folder_are_refused(clips, tmp_path):
    root, rows = clips
    secret = root.parent / "secret.wav"
    sf.write(secret, tone(), 16000)
    outside = [
        {"file": "../secret.wav", "emotion": "sad", "speaker": "spk0"},
        {"file": str(secret), "emotion": "sad", "speaker": "spk0"},
    ]
    table = write_table(
        tmp_path / "t.csv", [{k: r[k] for k in ("file", "emotion", "speaker")} for r in rows] + outside
    )
    with pytest.raises(CorpusError) as error:
        folder.build_with_report(root, table, num_workers=1)
    message = str(error.value)
    assert "file outside the corpus folder (2)" in message
    assert "(../secret.wav) is outside --audio_dir" in message and "--raw_dir" not in message


def test_without_speakers_it_is_refused_unless_allowed(clips, tmp_path):
    root, rows = clips
    table = write_table(tmp_path / "t.csv", [{"file": r["file"], "emotion": r["emotion"]} for r in rows])
    with pytest.raises(CorpusError, match="the clips have no speaker ids") as error:
        folder.build_with_report(root, table, num_workers=1)
    assert "clips of one voice in train and test flatter every score" in str(error.value)
    assert "--allow_speaker_overlap" in str(error.value)
    with pytest.warns(UserWarning, match="scores are speaker-dependent"):
        result = folder.build_with_report(root, table, allow_speaker_overlap=True, num_workers=1)
    dd = result.dataset_dict
    assert list(dd) == ["train", "validation", "test"] and sum(map(len, dd.values())) == 36
    assert sorted(dd["test"]["emotion"]) == [0, 1, 2]  # stratified: 10 % of each label
    assert "speaker-dependent" in result.card()


def test_too_few_speakers_says_what_to_do(clips, tmp_path):
    root, rows = clips
    two = [r for r in rows if r["speaker"] in ("spk0", "spk1")]
    table = write_table(tmp_path / "t.csv", two)
    with pytest.raises(
        CorpusError, match=r"(?s)found spk0, spk1; 2 speakers cannot fill.*need one speaker each"
    ):
        folder.build_with_report(root, table, num_workers=1)


def test_label_subfolders_audiofolder_layout(tmp_path):
    root = tmp_path / "clips"
    for e, label in enumerate(LABELS):
        (root / label).mkdir(parents=True)
        for k in range(5):
            sf.write(root / label / f"{k}.wav", tone(pitch=200 + 60 * e), 16000)
    sf.write(root / "stray.wav", tone(), 16000)
    with pytest.raises(CorpusError, match=r"stray.wav: not in a label sub-folder"):
        folder.build_with_report(root, allow_speaker_overlap=True, num_workers=1)
    (root / "stray.wav").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dd = folder.build(root, allow_speaker_overlap=True, num_workers=1)
    assert dd["train"].features["emotion"].names == LABELS and sum(map(len, dd.values())) == 15
    assert set(dd["test"]["utterance_id"]) <= {f"{label}/{k}" for label in LABELS for k in range(5)}


def test_existing_output_is_refused_and_kept(built, clips, capsys):
    root, _ = clips
    before = sorted(p.name for p in built.iterdir())
    args = [
        "--audio_dir",
        str(root),
        "--metadata",
        str(root.parent / "labels.csv"),
        "--output_dir",
        str(built),
    ]
    with pytest.raises(FileExistsError, match="already exists and is not empty.*--overwrite"):
        run_cli(args, capsys)
    assert sorted(p.name for p in built.iterdir()) == before


def test_a_recipe_trains_on_it(built, tmp_path):
    """Two steps of ssl_classifier on a tiny random Whisper encoder: --dataset_name_or_path OUT, unchanged."""
    import torch
    from serhub.recipes import ssl_classifier
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    encoder = tmp_path / "encoder"
    torch.manual_seed(0)
    config = WhisperConfig(
        d_model=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32, decoder_layers=1,
        decoder_attention_heads=2, decoder_ffn_dim=32, num_mel_bins=16, vocab_size=64, pad_token_id=0,
        bos_token_id=1, eos_token_id=2, decoder_start_token_id=3,
    )  # fmt: skip
    WhisperModel(config).save_pretrained(encoder)
    WhisperFeatureExtractor(feature_size=16).save_pretrained(encoder)
    out = tmp_path / "run"
    ssl_classifier.main(
        ["--encoder_name_or_path", str(encoder), "--dataset_name_or_path", str(built), "--output_dir", str(out),
         "--max_steps", "2", "--per_device_train_batch_size", "8", "--bootstrap", "10", "--head_hidden_size", "16"]
    )  # fmt: skip
    results = json.loads((out / "eval_results.json").read_text())["test"]
    assert results["labels"] == LABELS and results["num_samples"] == 6
    # serhub evaluate of the trained model gives the recipe's own test figures
    from serhub.evaluate import evaluate_model

    evaluated, _ = evaluate_model(str(out), str(built), bootstrap=0, progress=False)
    assert evaluated["confusion_matrix"] == results["confusion_matrix"]
    for key in ("accuracy", "unweighted_accuracy", "macro_f1"):
        assert evaluated[key] == pytest.approx(results[key]), key


def test_a_split_column_is_followed(clips, tmp_path):
    root, rows = clips
    names = {"spk4": "Dev", "spk5": "TEST"}
    table = write_table(tmp_path / "t.csv", [r | {"split": names.get(r["speaker"], "train")} for r in rows])
    result = folder.build_with_report(root, table, num_workers=1)
    assert {k: sorted(set(ds["speaker_id"])) for k, ds in result.dataset_dict.items()} == {
        "train": ["spk0", "spk1", "spk2", "spk3"],
        "validation": ["spk4"],
        "test": ["spk5"],
    }
    assert "splits as given in the table's split column" in result.card()
