"""The README's Python snippets run as written, offline.

Every ```python block of README.md is a test case, run in a fresh temporary working directory with
the Hub offline (conftest sets HF_HUB_OFFLINE and a throw-away HF_HOME). The convention:

- A block whose first line is ``# needs: <path> (<command>)`` uses something a README command makes
  (a trained model in ``outputs/...``). It is not run here; instead the command it names is checked to
  refer to a recipe or module that exists, so a reader who runs it gets what the block needs.
- Every other block runs, with nothing defined beforehand: a name it uses must be defined in the block.
- A block that loads real converted weights (it mentions ``offline:``) is marked ``slow`` (it converts
  them on first use; ``-m slow`` runs it, as CI does).

The shell commands of the README are checked for the recipe files and ``python -m`` modules they name.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
NEEDS = re.compile(r"^# needs: (?P<path>\S+) \((?P<command>.+)\)$")


def readme_blocks(language: str) -> list[tuple[int, str]]:
    """(line number, source) of every fenced block of ``language`` in the README."""
    text = README.read_text()
    return [
        (text.count("\n", 0, match.start()) + 2, match.group(1))
        for match in re.finditer(rf"^```{language}\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    ]


def runnable_blocks():
    params = []
    for line, source in readme_blocks("python"):
        if source.startswith("# needs:"):
            continue
        marks = [pytest.mark.slow] if "offline:" in source else []
        params.append(pytest.param(line, source, id=f"README.md:{line}", marks=marks))
    return params


def test_readme_has_runnable_and_needing_blocks():
    blocks = readme_blocks("python")
    assert len(runnable_blocks()) >= 4, "the README's runnable Python examples went missing"
    assert any(source.startswith("# needs:") for _, source in blocks)


@pytest.mark.parametrize(("line", "source"), runnable_blocks())
def test_readme_python_block_runs(line, source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = compile(source, f"README.md (block at line {line})", "exec")
    exec(code, {"__name__": "__readme__"})  # noqa: S102 - the README's own code, the point of the test


@pytest.mark.parametrize(
    ("line", "source"),
    [(line, source) for line, source in readme_blocks("python") if source.startswith("# needs:")],
)
def test_blocks_needing_a_trained_model_name_the_command_that_makes_it(line, source):
    match = NEEDS.match(source.splitlines()[0])
    assert match, f"README.md:{line}: write the first line as '# needs: <path> (<command>)'"
    assert match["path"] in source.split("\n", 1)[1], (
        f"README.md:{line}: the block does not use {match['path']}"
    )
    assert match["path"] in match["command"] or "recipes/" in match["command"]
    assert_command_targets_exist(match["command"], f"README.md:{line}")


def assert_command_targets_exist(command: str, where: str) -> None:
    root = README.parent
    for script in re.findall(r"(?<![\w/])(recipes/\w+\.py|app\.py|setup\.sh)", command):
        assert (root / script).is_file(), f"{where}: {script} does not exist"
    for module in re.findall(r"python -m ([\w.]+)", command):
        if module in ("pytest", "pip"):
            continue
        assert importlib.util.find_spec(module) is not None, f"{where}: no module {module}"


@pytest.mark.parametrize(("line", "source"), readme_blocks("bash"))
def test_readme_shell_commands_name_existing_scripts(line, source):
    assert_command_targets_exist(source, f"README.md:{line}")


TOOLS = {"timeline": "timeline", "export-onnx": "export_onnx", "evaluate": "evaluate", "predict": "predict"}


def readme_serhub_commands() -> list[tuple[int, list[str]]]:
    """(line, argv) of every ``serhub <tool> ...`` command in the README's shell blocks."""
    commands = []
    for line, source in readme_blocks("bash"):
        for command in source.replace("\\\n", " ").splitlines():
            words = shlex.split(command, comments=True)
            if words and words[0].endswith("/serhub"):
                commands.append((line, words[1:]))
    return commands


def test_the_quick_start_uses_the_serhub_tools():
    tools = {argv[0] for _, argv in readme_serhub_commands()}
    assert {"predict", "evaluate"} <= tools


@pytest.mark.parametrize(("line", "argv"), readme_serhub_commands())
def test_readme_serhub_commands_parse(line, argv):
    """Each ``serhub`` command of the README is accepted by the tool's own argument parser."""
    tool = importlib.import_module(f"serhub.{TOOLS[argv[0]]}")
    parser = argparse.ArgumentParser(prog=f"serhub {argv[0]}", exit_on_error=False)
    tool.add_arguments(parser)
    try:
        parser.parse_args(argv[1:])
    except (argparse.ArgumentError, SystemExit) as err:
        pytest.fail(f"README.md:{line}: serhub {' '.join(argv)} is refused by its parser: {err}")


QUICK_START_MODEL = "outputs/ssl_classifier"


@pytest.mark.slow
def test_the_quick_start_end_to_end(synthetic_small, tmp_path, monkeypatch):
    """The quick start as written, on a small corpus: train the classifier (one epoch, the README's
    recipe and output folder), run the Python block that needs it, then the README's own ``serhub
    predict`` and ``serhub evaluate`` commands."""
    from serhub.recipes import ssl_classifier

    from serhub.cli import main as serhub

    blocks = [s for _, s in readme_blocks("python") if s.startswith(f"# needs: {QUICK_START_MODEL} ")]
    assert blocks, "the quick start's Python block went missing"
    commands = [
        argv
        for _, argv in readme_serhub_commands()
        if argv[0] in ("predict", "evaluate") and QUICK_START_MODEL in argv
    ]
    audio = [w for argv in commands for w in argv if w.endswith(".wav")]
    if not all(Path(w).is_file() for w in audio):
        pytest.skip(f"{audio} not installed (setup.sh installs Debian's pocketsphinx-testdata)")
    monkeypatch.chdir(tmp_path)
    # a folder named like the embedded corpus wins over it: the README's `--dataset synthetic_emotions_v2`
    # then reads this small copy
    synthetic_small.save_to_disk("synthetic_emotions_v2")
    ssl_classifier.main(
        ["--dataset_name_or_path", "synthetic_emotions_v2", "--num_train_epochs", "1", "--bootstrap", "20",
         "--heldout_eval", "false"]
    )  # fmt: skip
    assert Path(QUICK_START_MODEL, "config.json").is_file()

    for source in blocks:
        exec(compile(source, "README.md quick start", "exec"), {"__name__": "__readme__"})  # noqa: S102
    for argv in commands:
        serhub(argv)
    assert Path("preds.csv").read_text().count("\n") >= 2
    assert Path("outputs/ssl_classifier-eval/eval_results.json").is_file()
