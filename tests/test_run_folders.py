"""Output folders: a run resumes only its own folder, never writes into someone else's, and two
runs cannot share one folder."""

import json
from pathlib import Path

import pytest
from serhub.recipes.run_folders import RUN_FILE, OutputDirError, claim_output_dir

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {"data.train": "abc", "labels": ["neutral", "sad"], "training.learning_rate": 1e-3}


def test_new_folder_is_claimed_and_the_same_run_resumes(tmp_path):
    out = tmp_path / "run"
    lock = claim_output_dir(out, "ssl_classifier", SETTINGS)
    assert json.loads((out / RUN_FILE).read_text())["recipe"] == "ssl_classifier"
    (out / "checkpoint-2").mkdir()
    lock.release()
    claim_output_dir(out, "ssl_classifier", dict(SETTINGS)).release()  # same settings: resume
    assert (out / "checkpoint-2").is_dir()


def test_other_data_or_labels_are_refused_and_overwrite_replaces(tmp_path):
    out = tmp_path / "run"
    claim_output_dir(out, "emosllm", SETTINGS).release()
    (out / "phase1").mkdir()
    changed = {**SETTINGS, "labels": ["neutral", "happy"]}
    with pytest.raises(OutputDirError, match=r"changed: labels.*--overwrite_output_dir"):
        claim_output_dir(out, "emosllm", changed)
    assert (out / "phase1").is_dir()  # nothing was touched
    claim_output_dir(out, "emosllm", changed, overwrite=True).release()
    assert not (out / "phase1").exists()
    assert json.loads((out / RUN_FILE).read_text())["settings"]["labels"] == ["neutral", "happy"]


def test_a_folder_that_is_not_a_run_is_never_written(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "README.md").write_text("my notes")
    for overwrite in (False, True):
        with pytest.raises(OutputDirError, match="not a serhub run"):
            claim_output_dir(out, "emosllm", SETTINGS, overwrite=overwrite)
    assert (out / "README.md").read_text() == "my notes" and sorted(p.name for p in out.iterdir()) == [
        "README.md"
    ]


def test_two_runs_cannot_share_a_folder(tmp_path):
    out = tmp_path / "run"
    first = claim_output_dir(out, "emosllm", SETTINGS)
    with pytest.raises(OutputDirError, match="another serhub run is writing"):
        claim_output_dir(out, "emosllm", SETTINGS)
    first.release()
    claim_output_dir(out, "emosllm", SETTINGS).release()


def test_only_the_main_process_claims(tmp_path):
    assert claim_output_dir(tmp_path / "run", "emosllm", SETTINGS, is_main=False) is None
    assert not (tmp_path / "run").exists()


def test_config_env_blocks_and_zero_training_are_refused(tmp_path, monkeypatch):
    from serhub.recipes import emosllm, ssl_classifier

    config = tmp_path / "evil.yaml"
    config.write_text("output_dir: x\nenv:\n  LD_PRELOAD: /tmp/evil.so\n  HF_HUB_OFFLINE: '0'\n")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    with pytest.raises(ValueError, match="env:.*block"):
        ssl_classifier.main(["--config", str(config)])
    import os

    assert "LD_PRELOAD" not in os.environ
    with pytest.raises(ValueError, match="zero steps"):
        ssl_classifier.main(["--num_train_epochs", "-1", "--output_dir", str(tmp_path / "o")])
    with pytest.raises(ValueError, match="phase_max_steps"):
        emosllm.main(["--phase_max_steps", "20", "0", "40", "--output_dir", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_a_missing_dataset_folder_is_named(tmp_path):
    from serhub.recipes.data import load_dataset_dict

    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_dataset_dict(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="Hub is offline"):
        load_dataset_dict("ds/nope")  # tests run with HF_HUB_OFFLINE=1


def test_a_half_written_last_checkpoint_is_skipped(tmp_path, caplog):
    from serhub.recipes.run_folders import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path / "absent") is None
    for step in (2, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-12").mkdir()  # killed while saving: no trainer_state.json
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")  # 10 > 2 numerically
    assert "checkpoint-12 is incomplete" in caplog.text  # a warning, whatever handlers are attached


def test_more_probed_faults(tmp_path):
    from serhub.recipes import emosllm, ssl_classifier

    a_file = tmp_path / "results.txt"
    a_file.write_text("mine")
    with pytest.raises(OutputDirError, match="is a file"):
        claim_output_dir(a_file, "emosllm", SETTINGS)
    assert a_file.read_text() == "mine"
    with pytest.raises(FileNotFoundError, match="no such file"):
        ssl_classifier.main(["--config", str(tmp_path / "missing.yaml")])
    with pytest.raises(ValueError, match="phases 1, 2 and 3"):
        emosllm.main(["--phases", "4", "--output_dir", str(tmp_path / "o")])


def test_a_killed_run_leaves_no_stale_lock(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "run"
    code = (
        "import os; from serhub.recipes.run_folders import claim_output_dir; "
        f"claim_output_dir({str(out)!r}, 'emosllm', {SETTINGS!r}); os._exit(0)"  # dies holding the lock
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(REPO))
    claim_output_dir(out, "emosllm", SETTINGS).release()  # the lock died with its process


def test_a_run_resumes_after_the_recipe_gains_an_unset_argument(tmp_path):
    """A new optional argument (None) changes the fingerprint but not what the run trains."""
    out = tmp_path / "run"
    claim_output_dir(out, "emosllm", SETTINGS).release()
    (out / "phase1").mkdir()
    claim_output_dir(out, "emosllm", {**SETTINGS, "data.max_test_samples": None}).release()
    assert (out / "phase1").is_dir()
    with pytest.raises(OutputDirError, match=r"changed: data.max_test_samples"):
        claim_output_dir(out, "emosllm", {**SETTINGS, "data.max_test_samples": 10})
    with pytest.raises(OutputDirError, match=r"changed: recipe"):
        claim_output_dir(out, "descriptors", SETTINGS)


def test_a_run_resumes_after_the_recipe_gains_an_argument_left_at_its_default(tmp_path):
    """A new argument whose default keeps the old behaviour (a list here) resumes the run; set to
    anything else, it is a change. The defaults come from the recipe's argument dataclasses."""
    import dataclasses

    from serhub.recipes.run_folders import run_settings

    # the same arguments class, before and after it gained "data"
    Old = dataclasses.make_dataclass("Args", [("steps", int, 3)])
    New = dataclasses.make_dataclass(
        "Args", [("steps", int, 3), ("data", list, dataclasses.field(default_factory=lambda: ["asr_train"]))]
    )

    training = dataclasses.make_dataclass("T", [])()
    out = tmp_path / "run"
    claim_output_dir(out, "emosllm", run_settings(training, ["a", "b"], {}, Old())).release()
    (out / "phase1").mkdir()
    claim_output_dir(out, "emosllm", run_settings(training, ["a", "b"], {}, New())).release()
    assert (out / "phase1").is_dir()
    with pytest.raises(OutputDirError, match=r"changed: Args.data"):
        claim_output_dir(out, "emosllm", run_settings(training, ["a", "b"], {}, New(data=["ser_train"])))
