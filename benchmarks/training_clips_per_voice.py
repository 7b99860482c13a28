"""Does more speech per training voice transfer? The speech classifier's default trained on
``synthetic_emotions_v2`` as built (12 clips per voice) against the same recipe trained on a train split of
``--clips_per_voice`` clips per voice (the same 74 voices and sentence bank, more clips), both scored on
the same validation and test splits and on held-out voices and sentences.

    python benchmarks/training_clips_per_voice.py --clips_per_voice 36 --baseline outputs/ssl_classifier \\
        --work_dir /tmp/clips_per_voice --output benchmarks/results/training_clips_per_voice.json

The larger train split is synthesised into ``--work_dir`` with the default corpus's validation and test
splits beside it (their voices and sentences are in no train split of either size: the builder's checks
run on the combined corpus). ``--baseline`` is a finished default run (``recipes/ssl_classifier.py``); the
new run uses the same config, only ``--dataset_name_or_path`` differs. Both models are then scored by
``serhub.heldout`` on ``--heldout_clips_per_voice`` clips of each held-out voice (12: 240 clips, a larger
draw than the recipe's own 120).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from serhub.recipes.reporting import write_json

REPO = Path(__file__).resolve().parents[1]


def build(clips_per_voice: int, folder: Path) -> Path:
    """The default v2 corpus with its train split synthesised at ``clips_per_voice`` clips per voice."""
    import datasets
    from serhub.datasets_scripts import synthetic_emotions_v2
    from serhub.datasets_scripts.common import check_speaker_independent, save_dataset_dict
    from serhub.datasets_scripts.synthetic_emotions_v2_report import check_unseen
    from serhub.recipes.data import embedded_dataset_path

    if (folder / "dataset_dict.json").is_file():
        return folder
    default = datasets.load_from_disk(str(embedded_dataset_path("synthetic_emotions_v2")))
    train = synthetic_emotions_v2.build(clips_per_voice, splits=("train",), num_workers=2)["train"]
    combined = datasets.DatasetDict(
        {
            "train": train.cast(default["train"].features),
            "validation": default["validation"],
            "test": default["test"],
        }
    )
    check_speaker_independent(combined)
    check_unseen(combined)
    save_dataset_dict(combined, folder)
    return folder


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips_per_voice", type=int, default=36)
    parser.add_argument("--baseline", type=Path, default=REPO / "outputs" / "ssl_classifier")
    parser.add_argument("--work_dir", type=Path, required=True)
    parser.add_argument("--heldout_clips_per_voice", type=int, default=12)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)

    import datasets
    from serhub.recipes.data import embedded_dataset_path

    from serhub.heldout import evaluate_heldout

    if not (args.baseline / "eval_results.json").is_file():
        sys.exit(f"--baseline {args.baseline}: no finished run (run recipes/ssl_classifier.py first)")
    data = build(args.clips_per_voice, args.work_dir / f"synthetic_emotions_v2-train{args.clips_per_voice}x")
    model = args.work_dir / f"ssl_classifier-train{args.clips_per_voice}x"
    if not (model / "eval_results.json").is_file():  # a finished run is reused (re-runs score it again)
        subprocess.run(
            [sys.executable, str(REPO / "recipes" / "ssl_classifier.py"), "--dataset_name_or_path", str(data),
             "--output_dir", str(model)],
            check=True, cwd=REPO,
        )  # fmt: skip
    train_clips = {
        "baseline": datasets.load_from_disk(str(embedded_dataset_path("synthetic_emotions_v2")))[
            "train"
        ].num_rows,
        "larger": datasets.load_from_disk(str(data))["train"].num_rows,
    }
    result = {"clips_per_voice": {"baseline": 12, "larger": args.clips_per_voice}, "models": {}}
    for name, folder in (("baseline", args.baseline), ("larger", model)):
        own = json.loads((folder / "eval_results.json").read_text())
        heldout = evaluate_heldout(folder, clips_per_voice=args.heldout_clips_per_voice)
        result["models"][name] = {
            "train_clips": train_clips[name],
            "test_macro_f1": own["test"]["macro_f1"],
            "test_ci": [own["test"].get("macro_f1_ci_low"), own["test"].get("macro_f1_ci_high")],
            "wall_s": (own.get("run") or {}).get("wall_s"),
            "recipe_heldout": {
                k: v["macro_f1"] for k, v in (own.get("heldout") or {}).items() if isinstance(v, dict)
            },
            f"heldout_{args.heldout_clips_per_voice}x": {
                k: [v["macro_f1"], v.get("macro_f1_ci_low"), v.get("macro_f1_ci_high")]
                for k, v in heldout.items()
            },
        }
    print(json.dumps(result, indent=2))
    if args.output:
        write_json(args.output, result, portable_paths=True)
    return result


if __name__ == "__main__":
    main()
