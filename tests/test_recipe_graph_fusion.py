"""recipes/graph_fusion.py's results table on tiny random encoders: --max_test_samples cuts the test
split, the encoders are named by their models, no figure is printed as nan, and the card loads the
model from --hub_model_id."""

import csv
import json
import math
import sys
from pathlib import Path

from serhub.recipes import graph_fusion

sys.path.insert(0, str(Path(__file__).parent))
from test_graph_fusion import LABELS, parts  # noqa: E402, F401  (the fixture)


def test_encoder_names_are_the_models_short_names():
    assert graph_fusion.encoder_names(
        ["offline:whisper-tiny.en", "openai/whisper-large-v3", "/data/wavlm/"]
    ) == [
        "whisper-tiny.en",
        "whisper-large-v3",
        "wavlm",
    ]
    # two encoders whose names end alike keep their node number, so the rows stay apart
    assert graph_fusion.encoder_names(["a/model", "b/model"]) == ["model (speech_0)", "model (speech_1)"]
    assert graph_fusion.row_label("speech_1 alone", ["x/enc_a", "x/enc_b"]) == "enc_b alone"
    assert graph_fusion.row_label("all but f0, gat", ["x/enc_a"]) == "all but f0, gat"


def test_a_table_without_intervals_says_so(tmp_path):
    test = {"macro_f1": 0.5, "unweighted_accuracy": 0.5}  # scored with --bootstrap 0: no interval
    rows = [graph_fusion.table_row("speech_0 alone", "enc_a alone", 0.25, test)]
    assert rows[0]["test_ci"] is None
    assert "no interval: --bootstrap 0" in graph_fusion.row_summary(rows[0])
    graph_fusion.write_table(rows, tmp_path)
    (row,) = csv.DictReader((tmp_path / "ablation.csv").open())
    assert row["model"] == "enc_a alone" and row["test_ci_low"] == "" and row["test_macro_f1"] == "0.5"


def test_recipe_table_names_encoders_and_scores_a_cut_test_split(parts, synthetic_small, tmp_path, capsys):  # noqa: F811
    names = synthetic_small["train"].features["emotion"].names
    keep = {names.index(label) for label in LABELS}
    data = tmp_path / "data"
    synthetic_small.filter(lambda r: r["emotion"] in keep).save_to_disk(str(data))
    out = tmp_path / "run"
    argv = ["--speech_models", str(parts / "enc_a"), str(parts / "enc_b"), "--text_model", "", "--asr_model", "",
            "--use_f0", "false", "--transcripts", "dataset", "--test_transcripts", "dataset",
            "--dataset_name_or_path", str(data), "--labels", *LABELS, "--max_test_samples", "5",
            "--output_dir", str(out), "--num_train_epochs", "2", "--hidden_size", "16", "--mlp_size", "16",
            "--spectral_channels", "4", "--bootstrap", "20", "--heldout_eval", "true", "--heldout_clips_per_voice", "1",
            "--per_device_train_batch_size", "16", "--hub_model_id", "someone/serhub-graph-fusion"]  # fmt: skip
    rows = graph_fusion.main(argv)
    # --max_test_samples: the test split is cut to 5 clips, everywhere it is scored
    results = json.loads((out / "eval_results.json").read_text())
    assert results["test"]["num_samples"] == 5
    # a model of fewer emotions than the held-out speech's is not scored on it, and the card says why
    assert "cannot answer" in results["heldout"]["skipped"]
    assert "Not scored: the model cannot answer" in (out / "README.md").read_text()
    assert all(r["test"]["num_samples"] == 5 for r in rows)
    # the encoders by their models' names, not their node numbers
    shown = [r["model"] for r in rows]
    assert "enc_a alone" in shown and "enc_b alone" in shown and "vote of the 3 fusions" in shown
    table = (out / "ablation.csv").read_text()
    card = (out / "README.md").read_text()
    logged = capsys.readouterr().out
    # the card's usage snippet loads the model from where --push_to_hub sends it
    assert 'model="someone/serhub-graph-fusion"' in card
    assert "| enc_a alone |" in card and "enc_b alone," in table
    for text in (table, card):
        assert "speech_0" not in text and "speech_1" not in text
    # every figure is a number: the vote of the fusions is scored on validation too
    vote = next(r for r in rows if r["model"] == "vote of the 3 fusions")
    assert 0.0 <= vote["validation_macro_f1"] <= 1.0
    for text in (table, card, logged):
        assert "nan" not in text.lower()
    assert all(
        math.isfinite(v) for r in rows for v in (r["validation_macro_f1"], r["test_macro_f1"], *r["test_ci"])
    )
