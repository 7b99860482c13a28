"""A recipe that fails ends in one line, ``serhub <recipe>: error: <message>``, last on stderr, with a
non-zero exit status; the traceback only with SERHUB_DEBUG=1 (recipes/logs.py: run_main)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from serhub.recipes.logs import BUG_EXIT, USER_ERROR_EXIT, run_main
from serhub.recipes.run_folders import OutputDirError

REPO = Path(__file__).resolve().parents[1]


def _exit(main, capsys, argv=()):
    with pytest.raises(SystemExit) as stopped:
        run_main(main, list(argv))
    return stopped.value.code, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    "error",
    [
        ValueError("--labels has 'sad' twice;\n  give each label once"),
        FileNotFoundError("no such folder data/x; pass a DatasetDict folder"),
        OutputDirError("outputs/x holds a run with other settings; pass --overwrite_output_dir true"),
    ],
    ids=["ValueError", "FileNotFoundError", "OutputDirError"],
)
def test_a_user_error_is_one_line(error, capsys, monkeypatch):
    monkeypatch.delenv("SERHUB_DEBUG", raising=False)

    def main(argv=None):
        raise error

    code, err = _exit(main, capsys)
    assert code == USER_ERROR_EXIT
    assert err == [f"serhub test_recipe_errors: error: {' '.join(str(error).split())}"]


def test_the_traceback_comes_with_serhub_debug_or_log_level_debug(capsys, monkeypatch):
    def main(argv=None):
        raise ValueError("bad value; use a good one")

    monkeypatch.setenv("SERHUB_DEBUG", "1")
    code, err = _exit(main, capsys)
    assert code == USER_ERROR_EXIT and err[0].startswith("Traceback")
    assert err[-1] == "serhub test_recipe_errors: error: bad value; use a good one"
    monkeypatch.delenv("SERHUB_DEBUG")
    for argv in (["--log_level", "debug"], ["--log_level=debug"]):
        code, err = _exit(main, capsys, argv)
        assert err[0].startswith("Traceback") and err[-1].endswith("error: bad value; use a good one")
    code, err = _exit(main, capsys, ["--log_level", "info"])
    assert len(err) == 1


def test_a_bug_keeps_its_traceback_and_ends_with_a_line_naming_it(capsys, monkeypatch):
    monkeypatch.delenv("SERHUB_DEBUG", raising=False)

    def main(argv=None):
        return {}["missing"]

    code, err = _exit(main, capsys)
    assert code == BUG_EXIT and err[0].startswith("Traceback")
    assert err[-1] == "serhub test_recipe_errors: internal error: KeyError: 'missing' (traceback above)"


def test_success_exits_zero_and_usage_errors_stay_argparse_s(capsys):
    assert _exit(lambda argv=None: [{"row": 1}], capsys) == (0, [])

    def main(argv=None):
        raise SystemExit(2)  # argparse's own "usage: ... error: ..." exit

    assert _exit(main, capsys)[0] == 2


def test_a_recipe_given_a_missing_dataset_folder_ends_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SERHUB_DEBUG"}
    missing = tmp_path / "no-such-data"
    result = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "zero_shot.py"), "--dataset_name_or_path", str(missing),
         "--output_dir", str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == USER_ERROR_EXIT, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"serhub zero_shot: error: --dataset_name_or_path {missing}: no such folder")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was written
