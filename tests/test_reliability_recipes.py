"""What a user hands a recipe, a sweep or the metric is checked at the boundary, before anything is
written: config files (types, size, aliases, label sets), sweep grids, and a sweep's finished points
(their recorded settings, each recipe's own result keys). The metric says when classes are absent."""

import csv
import json
import logging
import warnings
from pathlib import Path

import datasets
import pytest
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics
from serhub.recipes import (
    descriptors,
    emosllm,
    ensemble,
    graph_fusion,
    qwen2_audio_lora,
    ssl_classifier,
    sweep,
    text_llm,
    whisper_llm,
    zero_shot,
)
from serhub.recipes.arguments import DataArguments, parse_arguments
from serhub.recipes.data import load_dataset_dict
from serhub.recipes.reporting import MACRO_F1_SOURCES, read_macro_f1
from serhub.recipes.run_folders import RUN_FILE, OutputDirError, claim_output_dir, run_settings
from serhub.recipes.validation import MAX_CONFIG_BYTES

RECIPES = {
    "ssl_classifier": ssl_classifier,
    "text_llm": text_llm,
    "whisper_llm": whisper_llm,
    "emosllm": emosllm,
    "descriptors": descriptors,
    "graph_fusion": graph_fusion,
    "zero_shot": zero_shot,
    "ensemble": ensemble,
    "qwen2_audio_lora": qwen2_audio_lora,
}
NO_VALIDATION = {"qwen2_audio_lora"}  # scores the test split only: a sweep tabulates, choosing none
PARSED_RECIPES = [ssl_classifier, text_llm, emosllm, zero_shot]


# ------------------------------------------------------------------------------------- metric (W9)
def test_a_class_without_references_is_reported_beside_the_sklearn_macro_f1():
    from sklearn.metrics import f1_score

    refs = ["neutral", "happy", "neutral", "happy", "happy"]  # no "sad" in this split
    with pytest.warns(UserWarning, match=r"\['sad'\].*no references.*macro_f1_present"):
        out = classification_metrics(refs, refs, labels=["neutral", "happy", "sad"])
    # the existing key keeps scikit-learn's meaning: the absent class counts as 0
    assert out["macro_f1"] == pytest.approx(
        f1_score(refs, refs, labels=["neutral", "happy", "sad"], average="macro", zero_division=0)
    )
    assert out["macro_f1"] == pytest.approx(2 / 3)
    assert out["macro_f1_present"] == 1.0 and out["classes_without_references"] == ["sad"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every class present: no warning, both figures agree
        full = classification_metrics(refs + ["sad"], refs + ["sad"], labels=["neutral", "happy", "sad"])
    assert full["macro_f1"] == full["macro_f1_present"] == 1.0 and full["classes_without_references"] == []


def test_the_metric_names_a_repeated_label_and_where_it_is():
    labels = ["neutral", "happy", "sad", "angry", "happy"]
    with pytest.raises(ValueError, match=r"labels: 'happy' appears twice \(positions 2 and 5\)"):
        classification_metrics(["sad"], ["sad"], labels=labels)
    for bootstrap in (-1, 2.5, "100"):
        with pytest.raises(ValueError, match="bootstrap is a number of resamples"):
            classification_metrics(["sad"], ["sad"], labels=["sad", "happy"], bootstrap=bootstrap)


# ------------------------------------------------------------------------ configs (C9, C10, C11, C12)
def write(tmp_path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("recipe", PARSED_RECIPES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_a_config_value_of_the_wrong_type_is_refused_naming_key_type_value_and_file(recipe, tmp_path):
    config = write(tmp_path, f"output_dir: {tmp_path / 'out'}\nlearning_rate: [0.001, 0.01]\n")
    with pytest.raises(ValueError) as error:
        recipe.main(["--config", str(config)])
    message = str(error.value)
    assert str(config) in message and "`learning_rate` expects float" in message
    assert "found list [0.001, 0.01]" in message and "single value" in message
    assert not (tmp_path / "out").exists()  # refused before a run folder was claimed


@pytest.mark.parametrize(
    "text, expected",
    [
        ("num_train_epochs: three\n", "`num_train_epochs` expects float, found str 'three'"),
        ("max_steps: 2.5\n", "`max_steps` expects int"),
        ("labels: sad\n", "`labels` expects list[str] | None, found str"),
        ("freeze_encoder: maybe\n", "`freeze_encoder` expects bool"),
        (
            "learning_rte: 0.1\n",
            "`learning_rte` is not an argument of this recipe \\(did you mean learning_rate",
        ),
    ],
)
def test_config_types_and_names_are_checked(text, expected, tmp_path):
    config = write(tmp_path, text)
    with pytest.raises(ValueError, match=expected):
        parse_arguments(ssl_classifier.ARGUMENTS, config, [])


def test_string_numbers_and_booleans_in_yaml_still_parse(tmp_path):
    # PyYAML reads 1e-4 (no dot) as a string; the parser converts it, so it is a float value
    config = write(tmp_path, "learning_rate: 1e-4\nfreeze_encoder: 'false'\nlabels: [a, b]\n")
    model_args, data_args, _, training_args = parse_arguments(ssl_classifier.ARGUMENTS, config, [])
    assert training_args.learning_rate == 1e-4 and model_args.freeze_encoder is False
    assert data_args.labels == ["a", "b"]


LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


@pytest.mark.parametrize("key", ["unknown_key", "labels"])
def test_yaml_aliases_are_refused_before_they_expand(key, tmp_path):
    config = write(
        tmp_path,
        f"output_dir: {tmp_path / 'out'}\n{key}:\n" + "".join(f"  {line}\n" for line in LAUGHS.splitlines()),
    )
    with pytest.raises(ValueError, match=r"line \d+: YAML anchors and aliases .* are not allowed"):
        ssl_classifier.main(["--config", str(config)])
    assert not (tmp_path / "out").exists()


def test_an_oversized_config_is_refused(tmp_path):
    config = write(tmp_path, "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1) + "learning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"at most 1,000,000 bytes"):
        ssl_classifier.main(["--config", str(config)])


@pytest.mark.parametrize(
    "labels, expected",
    [
        (
            "[[neutral], [sad]]",
            r"`labels` expects list\[str\] \| None, found list \[\['neutral'\], \['sad'\]\]",
        ),
        ("{neutral: 1, sad: 2}", r"`labels` expects list\[str\] \| None, found dict"),
        ("[neutral, '', sad]", r"labels: entry 2 is str ''; each label must be a non-empty name"),
        ("[neutral]", r"labels has 1 label\(s\) \['neutral'\]; a classifier needs at least two"),
        ("[neutral, happy, sad, angry, happy]", r"labels: 'happy' appears twice \(positions 2 and 5\)"),
    ],
)
def test_a_config_label_set_is_a_list_of_distinct_names(labels, expected, tmp_path):
    config = write(tmp_path, f"output_dir: {tmp_path / 'out'}\nlabels: {labels}\n")
    with pytest.raises(ValueError, match=expected) as error:
        ssl_classifier.main(["--config", str(config)])
    assert str(config) in str(error.value) and "unhashable" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_command_line_labels_are_checked_the_same_way(tmp_path):
    argv = ["--labels", "neutral", "happy", "sad", "angry", "happy", "--output_dir", str(tmp_path / "out")]
    with pytest.raises(ValueError, match=r"--labels: 'happy' appears twice \(positions 2 and 5\)"):
        ssl_classifier.main(argv)
    with pytest.raises(ValueError, match=r"--bootstrap is a number of resamples"):
        DataArguments(bootstrap=-1)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------- sweep grid (C13)
@pytest.mark.parametrize(
    "grid, expected",
    [
        (["learning_rate=,"], r"--grid learning_rate=,: value 1 is empty"),
        (["learning_rate=1e-4,,3e-4"], r"value 2 is empty"),
        (
            ["lerning_rate=1e-4"],
            r"--grid lerning_rate: not an argument of this recipe \(did you mean learning_rate",
        ),
        (["learning_rate=fast"], r"`learning_rate` expects float, found str 'fast'"),
        (["lora_r=4,8,4"], r"--grid lora_r: '4' appears twice \(positions 1 and 3\); list each value once"),
        (["output_dir=a,b"], r"not a grid key"),
    ],
)
def test_a_bad_grid_is_refused_before_anything_is_written(grid, expected, tmp_path):
    with pytest.raises(ValueError, match=expected):
        sweep.main(["--recipe", "text_llm", "--output_dir", str(tmp_path / "sw"), "--grid", *grid])
    assert not (tmp_path / "sw").exists()


# ------------------------------------------------------------------ sweep results and settings (W10, W11)
def fake_results(
    recipe: str, eval_split: str, test_split: str, validation: float, test: float
) -> tuple[dict, dict]:
    """eval_results.json as each recipe writes it (and any other file its validation figure is in)."""
    test_metrics = {
        "macro_f1": test,
        "macro_f1_ci_low": test - 0.1,
        "macro_f1_ci_high": test + 0.1,
        "accuracy": 0.5,
    }
    if recipe == "ssl_classifier":  # Trainer.evaluate() prefixes validation metrics with eval_
        return {eval_split: {"eval_macro_f1": validation, "eval_loss": 1.0}, test_split: test_metrics,
                "train_runtime_s": 3.0}, {}  # fmt: skip
    if recipe in ("text_llm", "whisper_llm"):
        return {eval_split: {"macro_f1": validation}, test_split: test_metrics, "train_runtime_s": 3.0}, {}
    if recipe == "emosllm":  # test SER in two modes; validation SER in phase 3's evaluations
        history = {"log_history": [{"eval_label_logits_macro_f1": 0.01}, {"loss": 1.0},
                                   {"eval_label_logits_macro_f1": validation, "eval_wer": 0.5}]}  # fmt: skip
        results = {"label_logits": test_metrics, "transcript_conditioned": {**test_metrics, "macro_f1": 0.0},
                   "wer_heldout_asr": 0.4, "phase1_s": 1.0, "phase3_s": 2.0}  # fmt: skip
        return results, {"phase3/stage_done.json": history}
    if recipe == "descriptors":  # as emosllm; the last stage run holds the validation figure
        early = {"log_history": [{"eval_label_logits_macro_f1": 0.01}]}
        history = {"log_history": [{"eval_label_logits_macro_f1": validation}]}
        results = {"label_logits": test_metrics, "stage1_1_s": 1.0, "stage2_2_s": 2.0, "encoder_cache_s": 9.0}
        return results, {"stage1_1/stage_done.json": early, "stage2_2/stage_done.json": history}
    if recipe == "graph_fusion":  # the validation figure is the ablation row of the fused model
        rows = [
            {"row": "speech only", "validation_macro_f1": 0.99},
            {"row": "all, gat", "validation_macro_f1": validation},
        ]
        return {"test": test_metrics, "ablation": rows, "runtime_s": 3.0}, {}
    if recipe == "zero_shot":
        return {eval_split: {"macro_f1": validation}, test_split: test_metrics, "runtime_s": 3.0}, {}
    if recipe == "ensemble":  # the validation figure is the table row chosen on validation
        table = [{"members": "a+b", "voting": "hard", f"{eval_split}_macro_f1": 0.99},
                 {"members": "a+b", "voting": "soft", f"{eval_split}_macro_f1": validation}]  # fmt: skip
        chosen = {"members": "a+b", "voting": "soft"}
        return {
            test_split: test_metrics,
            "table": table,
            "chosen_on_validation": chosen,
            "runtime_s": 3.0,
        }, {}
    if recipe == "qwen2_audio_lora":  # no validation figure; the run record's wall time
        return {"label_scoring": test_metrics, "generation": {**test_metrics, "macro_f1": 0.0},
                "run": {"wall_s": 3.0}}, {}  # fmt: skip
    raise AssertionError(f"add {recipe}'s eval_results.json layout to this table")


def fake_main(recipe: str, module, scores: dict, calls: list):
    """The recipe's run without training: parse and claim its folder as the recipe does, then write
    its results (validation/test macro-F1 from ``scores`` by learning rate)."""

    def main(argv):
        calls.append(argv)
        *args, training_args = parse_arguments(module.ARGUMENTS, module.DEFAULT_CONFIG, argv)
        data_args = next(a for a in args if isinstance(a, DataArguments))
        # the defaults' corpus is not built for a fake run: only a dataset given on the command line is read
        raw = load_dataset_dict(data_args.dataset_name_or_path) if "--dataset_name_or_path" in argv else {}
        settings = run_settings(training_args, ["a", "b"], dict(raw), *args, exclude=("bootstrap",))
        overwrite = any(getattr(a, "overwrite_output_dir", False) for a in args)
        claim_output_dir(training_args.output_dir, recipe, settings, overwrite).release()
        validation, test = scores[training_args.learning_rate]
        results, extra = fake_results(recipe, data_args.eval_split, data_args.test_split, validation, test)
        out = Path(training_args.output_dir)
        (out / "eval_results.json").write_text(json.dumps(results))
        for name, content in extra.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_text(json.dumps(content))

    return main


def test_every_recipe_sweep_can_run_has_a_macro_f1_source():
    assert set(sweep.RECIPES) == set(MACRO_F1_SOURCES) == set(RECIPES)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_sweep_reads_each_recipes_own_keys_and_picks_the_best_on_validation(
    recipe, tmp_path, monkeypatch, caplog
):
    module = RECIPES[recipe]
    calls = []
    # the best on validation (3e-4) is neither the first row nor the best on test
    scores = {1e-4: (0.50, 0.60), 3e-4: (0.90, 0.65), 1e-3: (0.70, 0.80)}
    monkeypatch.setattr(module, "main", fake_main(recipe, module, scores, calls))
    out = tmp_path / "sw"
    argv = ["--recipe", recipe, "--output_dir", str(out), "--grid", "learning_rate=1e-4,3e-4,1e-3", "--",
            "--eval_split", "dev", "--test_split", "heldout"]  # fmt: skip
    caplog.set_level(logging.INFO, logger="serhub")
    rows = sweep.main(argv)
    assert len(calls) == 3
    assert [r["test_macro_f1"] for r in rows] == [0.60, 0.65, 0.80]
    assert rows[0]["test_ci"] == pytest.approx((0.5, 0.7)) and rows[0]["runtime_s"] == 3.0
    table = list(csv.DictReader((out / "sweep.csv").open()))
    if recipe in NO_VALIDATION:
        assert [r["validation_macro_f1"] for r in rows] == [None] * 3
        assert "no best run is chosen" in caplog.text and len(table) == 3
        return
    assert [r["validation_macro_f1"] for r in rows] == [0.50, 0.90, 0.70]
    assert "best on validation: learning_rate-3e-4 " in caplog.text
    assert [float(r["validation_macro_f1"]) for r in table] == [0.5, 0.9, 0.7]
    # the lookup itself, on one folder
    assert read_macro_f1(out / "learning_rate-1e-3", recipe)["validation_macro_f1"] == 0.70


def tiny_dataset(path: Path, texts: list[str]) -> str:
    split = datasets.Dataset.from_dict({"text": texts, "emotion": ["a", "b"] * (len(texts) // 2)})
    datasets.DatasetDict({"train": split, "validation": split, "test": split}).save_to_disk(str(path))
    return str(path)


def test_a_finished_point_is_done_only_with_the_same_settings(tmp_path, monkeypatch):
    first = tiny_dataset(tmp_path / "first", ["one", "two", "three", "four"])
    other = tiny_dataset(tmp_path / "other", ["five", "six", "seven", "eight"])
    calls = []
    monkeypatch.setattr(
        ssl_classifier,
        "main",
        fake_main("ssl_classifier", ssl_classifier, {1e-4: (0.5, 0.6), 1e-3: (0.7, 0.8)}, calls),
    )
    out = tmp_path / "sw"

    def run(*passthrough):
        return sweep.main(["--recipe", "ssl_classifier", "--output_dir", str(out), "--grid",
                           "learning_rate=1e-4,1e-3", "--", *passthrough])  # fmt: skip

    run("--dataset_name_or_path", first)
    assert len(calls) == 2
    table = (out / "sweep.csv").read_text()
    run("--dataset_name_or_path", first)  # the same settings: done, nothing runs
    assert len(calls) == 2
    # other data: refused before any run, naming what changed; the table is not rewritten
    with pytest.raises(
        OutputDirError, match=r"changed: DataArguments.dataset_name_or_path, data.test, data.train"
    ):
        run("--dataset_name_or_path", other)
    with pytest.raises(OutputDirError, match=r"changed: training.seed.*overwrite_output_dir true after --"):
        run("--dataset_name_or_path", first, "--seed", "7")
    assert len(calls) == 2 and (out / "sweep.csv").read_text() == table
    # the same folder rewritten with other rows: the fingerprints differ
    tiny_dataset(tmp_path / "first", ["nine", "ten", "eleven", "twelve"])
    with pytest.raises(OutputDirError, match=r"changed: data.test, data.train, data.validation"):
        run("--dataset_name_or_path", first)
    # --overwrite_output_dir true re-runs the points whose settings changed
    run("--dataset_name_or_path", other, "--overwrite_output_dir", "true")
    assert len(calls) == 4
    recorded = json.loads((out / "learning_rate-1e-3" / RUN_FILE).read_text())["settings"]
    assert recorded["DataArguments.dataset_name_or_path"] == other


def test_a_real_ssl_classifier_sweep_is_not_rerun(synthetic_small, tmp_path, monkeypatch):
    """The settings the sweep computes before a run equal those the recipe records (a tiny real run)."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    encoder = tmp_path / "encoder"
    torch.manual_seed(0)
    config = WhisperConfig(d_model=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32,
                           decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32, num_mel_bins=16,
                           vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=3)  # fmt: skip
    WhisperModel(config).save_pretrained(encoder)
    WhisperFeatureExtractor(feature_size=16).save_pretrained(encoder)
    data = tmp_path / "data"
    synthetic_small.save_to_disk(str(data))
    argv = ["--recipe", "ssl_classifier", "--output_dir", str(tmp_path / "sw"), "--grid", "learning_rate=5e-3,1e-2",
            "--", "--encoder_name_or_path", str(encoder), "--dataset_name_or_path", str(data),
            "--num_train_epochs", "1", "--per_device_train_batch_size", "32", "--head_hidden_size", "16",
            "--bootstrap", "10", "--report_to", "none"]  # fmt: skip
    rows = sweep.main(argv)
    assert all(0 <= r["validation_macro_f1"] <= 1 and 0 <= r["test_macro_f1"] <= 1 for r in rows)
    calls = []
    monkeypatch.setattr(ssl_classifier, "main", lambda argv: calls.append(argv))
    again = sweep.main(argv)
    assert calls == [] and again == rows
