"""Hyperparameter sweeps over a recipe (THAU-UPM's LoRA rank / alpha / learning-rate search).

    python -m serhub.recipes.sweep --recipe text_llm --output_dir outputs/sweep_text \\
        --grid lora_r=4,8,16 lora_alpha=16,32 -- --num_train_epochs 1
    python -m serhub.recipes.sweep --recipe emosllm --output_dir outputs/sweep_emosllm --grid lora_r=4,8 learning_rate=1e-4,3e-4

Every combination of the grid runs the recipe once, in its own folder under ``--output_dir``
(``lora_r-8_lora_alpha-16``, ...); arguments after ``--`` go to every run. The grid is checked
before anything is written: every key an argument of the recipe, every value of its type, none
empty or repeated. A run that finished (its folder has eval_results.json) with the settings this
sweep asks for (serhub_run.json: the arguments and the data's fingerprints) is not run again, and
one that was interrupted resumes from its last checkpoint (each run's folder is an ordinary serhub
run), so a killed sweep is re-run with the same command. A folder holding a run with other settings
(other data, another config) is refused before any run starts, naming what changed, as a recipe
refuses it; ``-- --overwrite_output_dir true`` re-runs those points instead. At the end: ``sweep.csv`` (one row per run: the grid values, validation and test
macro-F1, the test interval, the run time) and ``sweep.png`` (macro-F1 against the first grid key,
one line per combination of the others).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import io
import itertools
import sys
from pathlib import Path

from serhub.modeling.file_utils import atomic_write
from serhub.recipes.logs import get_logger, run_main
from serhub.recipes.reporting import MACRO_F1_SOURCES, read_macro_f1

RECIPES = tuple(MACRO_F1_SOURCES)  # the recipes whose results sweep knows how to read
NOT_GRID_KEYS = ("output_dir", "overwrite_output_dir")  # the sweep's own, or for every run (after --)
logger = get_logger("sweep")


def parse_grid(entries: list[str], arguments: dict | None = None) -> dict[str, list[str]]:
    """``key=v1,v2,...`` entries as {key: [values]}; with ``arguments`` (the recipe's, from
    validation.argument_types) every key must be one of them and every value of its type."""
    import difflib

    from serhub.metrics.ser_metrics.ser_metrics import check_unique
    from serhub.recipes.validation import check_value

    grid = {}
    for entry in entries:
        key, sep, values = entry.partition("=")
        if not sep or not key or not values:
            raise ValueError(f"--grid entries are key=v1,v2,... (e.g. lora_r=4,8,16), got {entry!r}")
        if key in grid:
            raise ValueError(f"--grid names {key!r} twice")
        if key in NOT_GRID_KEYS:
            raise ValueError(
                f"--grid {key}: not a grid key; --output_dir is the sweep's, other options go after --"
            )
        if arguments is not None and key not in arguments and key != "config":
            close = difflib.get_close_matches(key, list(arguments), n=3)
            raise ValueError(
                f"--grid {key}: not an argument of this recipe"
                + (f" (did you mean {', '.join(close)}?)" if close else "")
                + "; run the recipe with --help for its arguments."
            )
        grid[key] = [v.strip() for v in values.split(",")]
        for i, value in enumerate(grid[key], 1):
            if not value:
                raise ValueError(
                    f"--grid {entry}: value {i} is empty; give values separated by commas, e.g. {key}=1e-4,3e-4."
                )
            if arguments is not None and key in arguments:
                check_value(key, value, arguments[key], f"--grid {entry}", from_text=True)
        check_unique(grid[key], f"--grid {key}", item="value")
    if not grid:
        raise ValueError("--grid needs at least one key=v1,v2,... entry")
    return grid


def run_name(point: dict[str, str]) -> str:
    return "_".join(f"{k}-{v}" for k, v in point.items()).replace("/", "-")


def point_argv(passthrough: list[str], point: dict[str, str], folder: Path) -> list[str]:
    return [*passthrough, *[x for k, v in point.items() for x in (f"--{k}", v)], "--output_dir", str(folder)]


def finished(recipe, name: str, folder: Path, argv: list[str]) -> bool:
    """Whether ``folder`` holds a finished ``name`` run made with the settings ``argv`` asks for.

    The arguments are parsed as the recipe parses them (every value is checked now, before anything
    is written). A folder holding a run is compared with what can be known without running it: the
    arguments, the training hyperparameters and each split's data fingerprint (run_settings); one
    with other settings is refused naming what changed, or re-run with --overwrite_output_dir."""
    from serhub.recipes.arguments import DataArguments, parse_arguments
    from serhub.recipes.data import load_dataset_dict
    from serhub.recipes.run_folders import matches_recorded_run, run_settings

    *args, training_args = parse_arguments(recipe.ARGUMENTS, recipe.DEFAULT_CONFIG, argv)
    if not folder.is_dir() or not any(folder.iterdir()):
        return False
    data_args = next(a for a in args if isinstance(a, DataArguments))
    overwrite = any(getattr(a, "overwrite_output_dir", False) for a in args)
    data = load_dataset_dict(data_args.dataset_name_or_path, data_args)
    settings = run_settings(training_args, (), dict(data), *args)
    del settings["labels"]  # follow from the data and --labels, both compared
    try:
        same = matches_recorded_run(folder, name, settings, overwrite)
    except ValueError as err:
        raise type(err)(f"sweep: {err} (a sweep takes --overwrite_output_dir true after --)") from None
    return same and (folder / "eval_results.json").is_file()


def plot(rows: list[dict], grid: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first, rest = next(iter(grid)), list(grid)[1:]
    fig, ax = plt.subplots(figsize=(7, 4))
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in rest), []).append(r)
    for key, group in groups.items():
        group = sorted(group, key=lambda r: float(r[first]) if _number(r[first]) else r[first])
        for split, style in (("test", "-o"), ("validation", "--x")):
            ys = [r.get(f"{split}_macro_f1") for r in group]
            if any(y is not None for y in ys):
                label = ", ".join(f"{k}={v}" for k, v in zip(rest, key)) or "runs"
                ax.plot([r[first] for r in group], ys, style, label=f"{label} ({split})")
    ax.set_xlabel(first)
    ax.set_ylabel("macro-F1")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def main(argv=None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", required=True, choices=RECIPES)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--grid", nargs="+", required=True, help="key=v1,v2,... (any argument of the recipe)")
    args = parser.parse_args(argv)
    from serhub.recipes.validation import argument_types

    recipe = importlib.import_module(f"serhub.recipes.{args.recipe}")
    grid = parse_grid(args.grid, argument_types(recipe.ARGUMENTS))
    for key in grid:
        if any(a == f"--{key}" or a.startswith(f"--{key}=") for a in passthrough):
            raise ValueError(f"--{key} is both in the grid and after --; give it in one place")
    if any(a == "--output_dir" or a.startswith("--output_dir=") for a in passthrough):
        raise ValueError("--output_dir is the sweep's: each run gets a folder inside it")
    out = Path(args.output_dir)
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    # every point is parsed and checked against its folder before any run starts or anything is written
    plans = []
    for point in points:
        folder = out / run_name(point)
        run_argv = point_argv(passthrough, point, folder)
        plans.append((point, folder, run_argv, finished(recipe, args.recipe, folder, run_argv)))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (point, folder, point_args, done) in enumerate(plans, 1):
        if done:
            logger.info("sweep run %d/%d: %s already finished with these settings", i, len(points), point)
        else:
            logger.info("sweep run %d/%d: %s", i, len(points), point)
            recipe.main(point_args)
        rows.append({**point, **(read_macro_f1(folder, args.recipe) or {}), "folder": folder.name})
    keys = [
        *grid,
        "validation_macro_f1",
        "test_macro_f1",
        "test_ci_low",
        "test_ci_high",
        "runtime_s",
        "folder",
    ]
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(keys)
    for r in rows:
        ci = r.get("test_ci") or (None, None)
        values = {**r, "test_ci_low": ci[0], "test_ci_high": ci[1]}
        writer.writerow(
            [round(values[k], 4) if isinstance(values.get(k), float) else values.get(k) for k in keys]
        )
    atomic_write(out / "sweep.csv", lambda tmp: tmp.write_text(table.getvalue()))
    plot(rows, grid, out / "sweep.png")
    scored = [r for r in rows if r.get("validation_macro_f1") is not None]
    if not scored:
        logger.warning(
            "no run recorded a validation macro-F1; no best run is chosen (table in %s)", out / "sweep.csv"
        )
        return rows
    best = max(scored, key=lambda r: r["validation_macro_f1"])
    logger.info(
        "best on validation: %s (test macro-F1 %s); table in %s",
        best["folder"],
        best.get("test_macro_f1"),
        out / "sweep.csv",
    )
    return rows


if __name__ == "__main__":
    run_main(main)
