"""The README's figures are generated from finished runs (benchmarks/readme_figures.py): its marked
blocks equal what benchmarks/results/defaults.json renders to, so a figure edited by hand, or a
collect without a render, fails here; collect turns a run folder into the row the README shows."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("readme_figures", REPO / "benchmarks" / "readme_figures.py")
figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(figures)

RUN = {
    "wall_s": 185.4,
    "peak_rss_gb": 2.61,
    "torch_threads": 2,
    "cpu_count": 2,
    "world_size": 1,
    "commit": "abc1234",
    "date": "2026-12-06T09:00:00Z",
}


def test_the_readme_figures_are_those_of_defaults_json():
    readme = figures.readme_blocks(figures.README.read_text())
    rendered = figures.render(figures.load_defaults())
    for name in figures.MARKERS:
        assert readme[name] == rendered[name], (
            f"README.md's figures:{name} block differs from benchmarks/results/defaults.json: run "
            "`python benchmarks/readme_figures.py --render` (or --collect the runs) instead of editing it"
        )


def test_every_table_row_has_its_text_without_a_record():
    assert {recipe for recipe, _ in figures.TABLE} == set(figures.FIXED)
    table = figures.render({"recipes": {}})["recipes"]
    assert "| `recipes/sweep.py` |" in table and figures.FIXED["qwen2_audio_lora"] in table


def write_ssl_run(folder: Path, run: dict | None = RUN) -> Path:
    test = {
        "macro_f1": 0.5204, "macro_f1_ci_low": 0.4512, "macro_f1_ci_high": 0.5838, "unweighted_accuracy": 0.497,
        "per_speaker_macro_f1": {"spk_b": 0.57, "spk_a": 0.50},
    }  # fmt: skip
    results = {
        "validation": {"eval_macro_f1": 0.61},
        "test": test,
        "calibration": {"temperature": 0.981, "fitted_on": "validation", "test": {"ece_before": 0.08, "ece_after": 0.0771}},
        "train_runtime_s": 90.0,
    }  # fmt: skip
    if run is not None:
        results["run"] = run
    folder.mkdir(parents=True)
    (folder / "eval_results.json").write_text(json.dumps(results))
    return folder


def test_collect_turns_a_run_folder_into_its_readme_row(tmp_path):
    record = figures.collect({"ssl_classifier": write_ssl_run(tmp_path / "ssl")})["ssl_classifier"]
    assert record["test_macro_f1"] == 0.5204 and record["test_ci"] == [0.4512, 0.5838]
    assert record["validation_macro_f1"] == 0.61 and record["run"] == RUN and record["run_given"] == []
    assert list(record["per_speaker_macro_f1"]) == ["spk_a", "spk_b"]  # speakers in a fixed order
    table = figures.render({"recipes": {"ssl_classifier": record}})["recipes"]
    row = next(line for line in table.splitlines() if line.startswith("| `recipes/ssl_classifier.py`"))
    assert row.endswith(
        "| 3:05 wall, peak RSS 2.6 GB, 2 threads; test macro-F1 0.52 (95 % CI 0.45–0.58), UA 0.50, "
        "per test voice 0.50 / 0.57; calibrated (T 0.98, test ECE 0.077) [commit abc1234, 2026-12-06] |"
    )


def test_the_ensemble_table_is_its_runs_table_with_the_saved_choice_in_bold(tmp_path):
    def row(members, voting, test, ci, validation):
        return {"members": members, "voting": voting, "size": len(members.split("+")), "test_macro_f1": test,
                "test_macro_f1_ci": ci, "test_ua": test, "validation_macro_f1": validation, "validation_ua": 0.4}  # fmt: skip

    rows = [
        row("a", "single", 0.379, [0.307, 0.447], 0.38), row("t", "single", 0.339, [0.268, 0.407], 0.34),
        row("a+t", "hard", 0.36, [0.3, 0.42], 0.38), row("a+t", "soft", 0.4275, [0.343, 0.505], 0.47),
    ]  # fmt: skip
    results = {
        "test": {"macro_f1": 0.4275, "macro_f1_ci_low": 0.343, "macro_f1_ci_high": 0.505, "unweighted_accuracy": 0.4},
        "members": [{"name": "a", "input": "audio"}, {"name": "t", "input": "transcript"}],
        "tie_breaker": "a", "chosen_on_validation": {"members": "a+t", "voting": "soft"},
        "best_member_on_validation": "a", "table": rows, "runtime_s": 450.0, "run": RUN,
    }  # fmt: skip
    (tmp_path / "ens").mkdir()
    (tmp_path / "ens" / "eval_results.json").write_text(json.dumps(results))
    record = figures.collect({"ensemble": tmp_path / "ens"})["ensemble"]
    block = figures.render({"recipes": {"ensemble": record}})["ensemble"]
    assert block.splitlines()[4:8] == [
        "| a alone | – | 0.379 (0.307–0.447) |",
        "| t alone | – | 0.339 (0.268–0.407) |",
        "| all 2 | hard (tie-breaker: a) | 0.360 (0.300–0.420) |",
        "| **all 2 (chosen on validation, saved)** | **soft** | **0.427 (0.343–0.505)** |",
    ]
    cell = figures.figures_cell("ensemble", record)
    assert "a + t (soft vote), chosen on validation: test macro-F1 0.43 (95 % CI 0.34–0.51)" in cell
    assert "the best member alone (a) 0.38 (0.31–0.45)" in cell


def test_many_test_voices_are_summarised_by_their_median_and_range():
    assert figures.speaker_words({"b": 0.57, "a": 0.5}) == "0.57 / 0.50"
    many = {f"voice{i:02d}": i / 20 for i in range(19)}  # 0.00 .. 0.90
    assert figures.speaker_words(many) == "(19) median 0.45, lowest 0.00, highest 0.90"
    assert figures.speaker_words({k: v for k, v in list(many.items())[:6]}) == (
        "(6) median 0.12, lowest 0.00, highest 0.25"
    )
    # the lowest voice beside what the clip counts alone would give (a run's per_speaker_chance)
    assert figures.speaker_words(many, 0.213) == (
        "(19) median 0.45, lowest 0.00 (0.21 expected were every voice heard alike), highest 0.90"
    )


def test_a_run_without_its_record_is_collected_with_the_figures_given_and_says_so(tmp_path):
    folder = write_ssl_run(tmp_path / "ssl", run=None)
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- figures:recipes:start -->old table<!-- figures:recipes:end -->\n"
        "main job: <!-- figures:emosllm:start -->old<!-- figures:emosllm:end -->"
        "<!-- figures:ensemble:start --><!-- figures:ensemble:end --> more prose\n"
    )
    defaults = tmp_path / "defaults.json"
    figures.main(["--collect", f"ssl_classifier={folder}", "--set", "ssl_classifier.wall_s=158",
                  "ssl_classifier.commit=abc1234", "--defaults", str(defaults), "--readme", str(readme)])  # fmt: skip
    record = json.loads(defaults.read_text())["recipes"]["ssl_classifier"]
    assert record["run"]["wall_s"] == 158 and record["run"]["peak_rss_gb"] is None
    assert record["run_given"] == ["commit", "wall_s"]
    text = readme.read_text()
    assert "2:38 wall (measured outside the run record: /usr/bin/time -v)" in text
    assert text.startswith("intro\n<!-- figures:recipes:start -->\n\n| recipe |") and text.endswith(
        " more prose\n"
    )
    assert figures.readme_blocks(text) == figures.render(json.loads(defaults.read_text()))
    with pytest.raises(ValueError, match="not a run field"):
        figures.collect({"ssl_classifier": folder}, {"ssl_classifier": {"wall": 1}})
    with pytest.raises(ValueError, match="no eval_results.json"):
        figures.collect({"ssl_classifier": tmp_path})
