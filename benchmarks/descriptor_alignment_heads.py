"""What the descriptor alignment (``--descriptor_alignment_steps``) teaches the descriptor branch, scored
on the full test split (the recipe's own log scores its validation subset).

    HF_HUB_OFFLINE=1 python benchmarks/descriptor_alignment_heads.py --run outputs/descriptors \\
        [--steps 300] [--kl_weights 0.01 0.1 1]

``--run``: a descriptors run folder whose ``encoder_cache`` holds the cached train and test splits
(any run of ``recipes/descriptors.py`` with the default encoder). For each beta, a fresh descriptor
branch is aligned with ``recipes/descriptor_alignment.train_descriptor_alignment`` and its heads are
scored on the test split (emotion macro-F1, accuracy per attribute), beside always writing the
training split's commonest word. Writes the table as JSON to ``--output_json``.
"""

from __future__ import annotations

import argparse
import collections
import glob
import time
from pathlib import Path


def cached(run: Path, split: str):
    import datasets

    files = sorted(glob.glob(str(run / "encoder_cache" / f"{split}-*.arrow")))
    if not files:
        raise SystemExit(f"{run}/encoder_cache has no {split!r} cache: give a descriptors run folder (--run)")
    keep = ["encoder_hidden_states", "labels", "descriptors"]
    return datasets.Dataset.from_file(files[0]).select_columns(keep)


def main(argv=None):
    from serhub.datasets_scripts.descriptors import descriptor_words
    from serhub.recipes.audio_llm_common import AudioLLMArguments, build_model
    from serhub.recipes.ctc_alignment import pad_rows
    from serhub.recipes.descriptor_alignment import ATTRIBUTES, head_scores, train_descriptor_alignment
    from serhub.recipes.reporting import write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--kl_weights", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    parser.add_argument("--output_json", default="benchmarks/results/descriptor_alignment_heads.json")
    args = parser.parse_args(argv)
    train, test = cached(args.run, "train"), cached(args.run, "test")
    labels = ["neutral", "happy", "sad", "angry", "fear", "surprise"]
    floors = {}
    for name in ATTRIBUTES:
        seen = collections.Counter(descriptor_words(t).get(name) for t in train["descriptors"])
        seen.pop(None, None)
        if seen:
            common = seen.most_common(1)[0][0]
            words = [descriptor_words(t).get(name) for t in test["descriptors"]]
            floors[name] = round(sum(w == common for w in words) / len(words), 4)
    rows = []
    for beta in args.kl_weights:
        start = time.time()
        model, _ = build_model(
            AudioLLMArguments(
                audio_model_name_or_path="offline:whisper-tiny.en",
                text_model_name_or_path="offline:smollm2-135m-instruct",
                connector="vae_ib",
                vib_latent_size=256,
                stack_factor=4,
            ),
            labels,
        )
        heads, _ = train_descriptor_alignment(
            model, train, pad_rows, len(labels), args.steps, learning_rate=args.learning_rate, kl_weight=beta
        )
        scores = head_scores(model, heads, test, pad_rows, len(labels))
        rows.append({"kl_weight": beta, "seconds": round(time.time() - start, 1), **scores})
        print(
            f"beta {beta:g}: emotion macro-F1 {scores['emotion_macro_f1']:.2f}  "
            + "  ".join(
                f"{n}: {scores[f'{n}_accuracy']:.2f} (commonest {floors[n]:.2f})"
                for n in floors
                if f"{n}_accuracy" in scores
            )
        )
    write_json(
        args.output_json,
        {
            "run": args.run.name,
            "steps": args.steps,
            "learning_rate": args.learning_rate,
            "commonest": floors,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
