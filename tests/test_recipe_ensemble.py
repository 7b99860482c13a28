"""recipes/ensemble.py on tiny members (two speech classifiers, a text classifier) and real clips."""

import csv
import json
import sys
from pathlib import Path

import pytest
from serhub.recipes import ensemble as recipe
from transformers import pipeline

sys.path.insert(0, str(Path(__file__).parent))
from test_ensemble import members  # noqa: E402, F401  (the fixture)
from test_speech_emotion import LABELS  # noqa: E402


@pytest.fixture(scope="module")
def three_label_data(synthetic_small, tmp_path_factory):
    """The small synthetic corpus restricted to the tiny members' labels."""
    names = synthetic_small["train"].features["emotion"].names
    keep = {names.index(label) for label in LABELS}
    path = tmp_path_factory.mktemp("data") / "three"
    synthetic_small.filter(lambda r: r["emotion"] in keep).save_to_disk(str(path))
    return str(path)


def run(root, data, out, *extra):
    return recipe.main(
        [
            "--members", f"a={root / 'speech_a'}", f"b={root / 'speech_b'}", f"t={root / 'text'}",
            "--dataset_name_or_path", data, "--labels", *LABELS,
            "--use_dataset_transcripts", "true", "--bootstrap", "20", "--output_dir", str(out), *extra,
        ]
    )  # fmt: skip


def test_every_combination_is_scored_and_the_chosen_ensemble_is_saved(members, three_label_data, tmp_path):  # noqa: F811
    out = tmp_path / "ens"
    rows = run(members, three_label_data, out, "--tie_breaker", "b")
    # 3 members alone, 3 pairs and the triple, each by hard and soft vote
    assert len(rows) == 3 + 4 * 2
    assert {r["members"] for r in rows if r["voting"] == "single"} == {"a", "b", "t"}
    table = list(csv.DictReader((out / "ensemble_table.csv").open()))
    assert len(table) == len(rows) and {"test_macro_f1", "test_ci_low", "test_ci_high"} <= set(table[0])
    assert (out / "ensemble_table.png").stat().st_size > 5000
    results = json.loads((out / "eval_results.json").read_text())
    chosen = results["chosen_on_validation"]
    best_validation = max(r["validation_macro_f1"] for r in rows if r["voting"] != "single")
    picked = next(r for r in rows if r["members"] == chosen["members"] and r["voting"] == chosen["voting"])
    assert picked["validation_macro_f1"] == best_validation
    assert results["test"]["macro_f1"] == picked["test_macro_f1"] and results["tie_breaker"] == "b"
    assert [results["test"]["macro_f1_ci_low"], results["test"]["macro_f1_ci_high"]] == picked[
        "test_macro_f1_ci"
    ]
    card = (out / "README.md").read_text()
    assert "| a+b+t | hard |" in card and "| t | single |" in card
    # the saved ensemble is a model: the pipeline loads it, with the chosen members and vote
    saved = json.loads((out / "config.json").read_text())
    assert saved["voting"] == chosen["voting"]
    assert [m["name"] for m in saved["members"]] == chosen["members"].split("+")


def test_bad_member_lists_are_refused(members, three_label_data, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match="at least two members"):
        recipe.main(["--members", str(members / "speech_a"), "--output_dir", str(tmp_path / "one")])
    with pytest.raises(ValueError, match="is not a model folder"):
        recipe.main(
            [
                "--members",
                str(members / "speech_a"),
                str(tmp_path / "nothing"),
                "--output_dir",
                str(tmp_path / "x"),
            ]
        )
    with pytest.raises(ValueError, match="--tie_breaker 'z' is not a member"):
        run(members, three_label_data, tmp_path / "tb", "--tie_breaker", "z")
    assert not (tmp_path / "tb").exists()


def test_the_saved_ensemble_runs_in_the_pipeline(members, three_label_data, tmp_path):  # noqa: F811
    """Two audio members: the chosen ensemble is both, and the pipeline gives its vote."""
    import numpy as np
    import torch
    from serhub.modeling import EnsembleForAudioClassification

    out = tmp_path / "ens"
    recipe.main(
        ["--members", f"a={members / 'speech_a'}", f"b={members / 'speech_b'}", "--dataset_name_or_path",
         three_label_data, "--labels", *LABELS, "--output_dir", str(out)]
    )  # fmt: skip
    saved = json.loads((out / "config.json").read_text())
    assert [m["name"] for m in saved["members"]] == ["a", "b"] and saved["asr_model"] is None
    clip = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    scores = {
        s["label"]: s["score"]
        for s in pipeline("audio-classification", model=str(out), trust_remote_code=True)(clip, top_k=None)
    }
    model = EnsembleForAudioClassification.from_pretrained(out)
    expected = model(
        **model.feature_extractor([clip], sampling_rate=16000, return_tensors="pt")
    ).logits.softmax(-1)[0]
    assert [scores[label] for label in LABELS] == pytest.approx(expected.tolist(), abs=1e-5)
    assert torch.isclose(expected.sum(), torch.tensor(1.0))
