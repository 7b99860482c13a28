"""Hyperparameter sweeps over a recipe (THAU-UPM's LoRA rank / alpha / learning-rate search).

    python -m serhub.recipes.sweep --recipe text_llm --output_dir outputs/sweep_text \\
        --grid lora_r=4,8,16 lora_alpha=16,32 -- --num_train_epochs 1
    python -m serhub.recipes.sweep --recipe emosllm --output_dir outputs/sweep_emosllm --grid lora_r=4,8 learning_rate=1e-4,3e-4

Every combination of the grid runs the recipe once, in its own folder under ``--output_dir``
(``lora_r-8_lora_alpha-16``, ...); arguments after ``--`` go to every run. A run that finished
(its folder has eval_results.json) is not run again, and one that was interrupted resumes from its
last checkpoint (each run's folder is an ordinary serhub run), so a killed sweep is re-run with the
same command. At the end: ``sweep.csv`` (one row per run: the grid values, validation and test
macro-F1, the test interval, the run time) and ``sweep.png`` (macro-F1 against the first grid key,
one line per combination of the others).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import io
import itertools
import json
import sys
from pathlib import Path

from serhub.modeling.file_utils import atomic_write
from serhub.recipes.logs import get_logger

RECIPES = ("text_llm", "emosllm", "whisper_llm", "ssl_classifier")
logger = get_logger("sweep")


def parse_grid(entries: list[str]) -> dict[str, list[str]]:
    grid = {}
    for entry in entries:
        key, sep, values = entry.partition("=")
        if not sep or not key or not values:
            raise ValueError(f"--grid entries are key=v1,v2,... (e.g. lora_r=4,8,16), got {entry!r}")
        if key in grid:
            raise ValueError(f"--grid names {key!r} twice")
        grid[key] = [v.strip() for v in values.split(",") if v.strip()]
    if not grid:
        raise ValueError("--grid needs at least one key=v1,v2,... entry")
    return grid


def run_name(point: dict[str, str]) -> str:
    return "_".join(f"{k}-{v}" for k, v in point.items()).replace("/", "-")


def scores(folder: Path) -> dict | None:
    path = folder / "eval_results.json"
    if not path.is_file():
        return None
    results = json.loads(path.read_text())
    row = {}
    for split in ("validation", "test"):
        metrics = results.get(split) or results.get("label_logits" if split == "test" else "", {})
        if isinstance(metrics, dict) and "macro_f1" in metrics:
            row[f"{split}_macro_f1"] = metrics["macro_f1"]
            if "macro_f1_ci_low" in metrics:
                row["test_ci"] = (metrics["macro_f1_ci_low"], metrics["macro_f1_ci_high"])
    row["runtime_s"] = results.get("train_runtime_s")
    return row


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
    grid = parse_grid(args.grid)
    for key in grid:
        if any(a == f"--{key}" or a.startswith(f"--{key}=") for a in passthrough):
            raise ValueError(f"--{key} is both in the grid and after --; give it in one place")
    if any(a == "--output_dir" or a.startswith("--output_dir=") for a in passthrough):
        raise ValueError("--output_dir is the sweep's: each run gets a folder inside it")
    recipe = importlib.import_module(f"serhub.recipes.{args.recipe}")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    for i, point in enumerate(points, 1):
        folder = out / run_name(point)
        done = scores(folder)
        if done is None:
            logger.info("sweep run %d/%d: %s", i, len(points), point)
            recipe.main(
                [
                    *passthrough,
                    *[x for k, v in point.items() for x in (f"--{k}", v)],
                    "--output_dir",
                    str(folder),
                ]
            )
            done = scores(folder) or {}
        else:
            logger.info("sweep run %d/%d: %s already finished", i, len(points), point)
        rows.append({**point, **done, "folder": folder.name})
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
    best = max(rows, key=lambda r: r.get("validation_macro_f1") or -1)
    logger.info(
        "best on validation: %s (test macro-F1 %s); table in %s",
        best["folder"],
        best.get("test_macro_f1"),
        out / "sweep.csv",
    )
    return rows


if __name__ == "__main__":
    main()
