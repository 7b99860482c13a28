"""How fast phase 1 (the connector alone, LLM frozen, the LM loss on ASR answers) teaches the LLM to
transcribe, per connector: held-out WER against steps and wall time.

    python benchmarks/phase1_curve.py --work_dir DIR --steps 300 --eval_every 50 \\
        --output_json benchmarks/results/phase1_curve.json

For each ``--connectors`` entry the main job (``recipes/emosllm.py``, its default config) runs phase 1
alone for ``--steps`` steps into ``<work_dir>/<connector>``, evaluating every ``--eval_every`` steps
(the recipe's own phase evaluation: greedy WER on the 24 held-out telephone prompts); the WER before
training is the recipe's own too (``phase1/wer_before_training.json``). Phase 1 alone ends the recipe
there (no SER evaluation). The connector's learning rate is the default's (the projector's 1e-3)
or ``--query_pooling_learning_rate`` for the 32-query mapper. A finished run in the work folder is read
again, not re-trained. Writes the curves (step, seconds, WER) as JSON and a plot beside it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from serhub.recipes.reporting import write_json

REPO = Path(__file__).resolve().parents[1]


def run_phase1(connector: str, folder: Path, args) -> None:
    """The recipe's phase 1 alone, evaluated every ``args.eval_every`` steps (skipped when done)."""
    if (folder / "phase1" / "stage_done.json").is_file():
        return
    command = [
        sys.executable, str(REPO / "recipes" / "emosllm.py"),
        "--connector", connector, "--phases", "1", "--phase_max_steps", str(args.steps),
        "--eval_strategy", "steps", "--eval_steps", str(args.eval_every),
        "--save_steps", str(args.eval_every), "--output_dir", str(folder),
    ]  # fmt: skip
    if connector == "query_pooling":
        command += ["--learning_rate", str(args.query_pooling_learning_rate)]
    subprocess.run(command, check=True, cwd=REPO)


def curve(folder: Path) -> dict:
    """(step, seconds, WER) from the phase's log and the run's WER before training."""
    done = json.loads((folder / "phase1" / "stage_done.json").read_text())
    history = done["log_history"]
    train = next(h for h in reversed(history) if "train_runtime" in h)
    seconds_per_step = train["train_runtime"] / train["step"]
    before = json.loads((folder / "phase1" / "wer_before_training.json").read_text())["wer"]
    points = [{"step": 0, "seconds": 0.0, "wer": before}]
    by_step = {h["step"]: h["eval_wer"] for h in history if "eval_wer" in h}  # the phase's end: once
    points += [
        {"step": step, "seconds": round(step * seconds_per_step, 1), "wer": wer}
        for step, wer in sorted(by_step.items())
    ]
    return {
        "seconds_per_step": round(seconds_per_step, 3),
        "train_runtime_s": train["train_runtime"],
        "curve": points,
    }


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for connector, found in curves.items():
        points = found["curve"]
        ax.plot([p["step"] for p in points], [p["wer"] for p in points], marker="o", label=connector)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="WER 0.5")
    ax.set_xlabel("phase-1 steps (batch 8)")
    ax.set_ylabel("held-out telephone WER (24 prompts)")
    ax.set_yscale("log")
    ax.set_title("Phase 1: the connector alone, LLM frozen, LM loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", type=Path, required=True)
    parser.add_argument("--connectors", nargs="+", default=["linear", "query_pooling"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval_every", type=int, default=50)
    parser.add_argument("--query_pooling_learning_rate", type=float, default=3e-4)
    parser.add_argument("--output_json", type=Path)
    args = parser.parse_args(argv)

    curves = {}
    for connector in args.connectors:
        folder = args.work_dir / connector
        run_phase1(connector, folder, args)
        curves[connector] = curve(folder)
        print(connector, [(p["step"], round(p["wer"], 2)) for p in curves[connector]["curve"]])
    out = {
        "what": (
            "held-out WER (24 telephone prompts, greedy) of the main job's phase 1 run alone, by step; "
            "seconds: the phase's runtime per step (its evaluations included) times the step"
        ),
        "command": (
            f"python benchmarks/phase1_curve.py --work_dir DIR --connectors {' '.join(args.connectors)} "
            f"--steps {args.steps} --eval_every {args.eval_every} --output_json {args.output_json}"
        ),
        "steps": args.steps,
        "eval_every": args.eval_every,
        "curves": curves,
    }
    if args.output_json:
        write_json(args.output_json, out, portable_paths=True)
        plot(curves, args.output_json.with_suffix(".png"))
    return out


if __name__ == "__main__":
    main()
