"""Speech from voices and sentences that no training split holds, clean and over a noisy telephone
line: the held-out evaluation that audio recipes add to their report and card (``--heldout_eval``).

    from serhub.heldout import evaluate_heldout
    scores = evaluate_heldout("outputs/ssl_classifier")  # {"heldout_voices": {...}, "heldout_voices_telephone": {...}}

The clips are ``synthetic_emotions_v2``'s ``heldout`` split: espeak-ng voices (variants and their
families) and sentence clauses that no split of either version of the synthetic corpus uses, read
with the corpora's emotion model, random level and silences. ``heldout_voices_telephone`` is the same
speech band-limited to 300-3400 Hz (``serhub.augment.telephone``) with pink noise at 15 dB SNR, each
clip's noise fixed by the seed. The set is built once per (clips per voice, seed) into the serhub
cache (``$SERHUB_CACHE``, default ``$HF_HOME/serhub``) and reused. Every model is scored through
:func:`serhub.evaluate.evaluate_model` (the pipeline, as ``serhub evaluate`` does): macro-F1 with its
bootstrap 95 % interval, UA, WA and each voice's macro-F1.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

CONDITIONS = ("heldout_voices", "heldout_voices_telephone")
DEFAULT_ENROLMENT = 2  # clips per voice that enrol a speaker-normalised model (neutral ones first)
TELEPHONE_SNR_DB = 15.0
FORMAT = "1"  # bump when the set's making changes: a new cache folder


def heldout_path(clips_per_voice: int, seed: int) -> Path:
    from serhub.modeling.offline_assets import cache_dir

    return cache_dir() / "heldout" / f"synthetic_emotions_v2-heldout-{clips_per_voice}x-seed{seed}-v{FORMAT}"


def telephone_with_noise(
    waveform: np.ndarray, seed: int, index: int, sampling_rate: int = 16000
) -> np.ndarray:
    """``waveform`` over a telephone line (300-3400 Hz) with pink noise at 15 dB SNR; the noise is
    fixed by (``seed``, ``index``)."""
    from serhub.augment import add_noise, coloured_noise, telephone

    rng = np.random.default_rng([seed, index])
    banded = telephone(np.asarray(waveform, dtype=np.float32), sampling_rate)
    noise = coloured_noise(len(banded), "pink", rng)
    return add_noise(banded, noise, TELEPHONE_SNR_DB, sampling_rate).astype(np.float32)


def heldout_dataset(clips_per_voice: int = 6, seed: int = 0, num_workers: int = 2) -> Path:
    """The held-out set's folder (a DatasetDict with one split per condition), built on first use.
    Two runs building it at once each write a private folder; the first to finish puts it in place."""
    import datasets

    from serhub.datasets_scripts import synthetic_emotions_v2

    path = heldout_path(clips_per_voice, seed)
    if (path / "dataset_dict.json").is_file():
        return path
    clean = synthetic_emotions_v2.build(
        clips_per_voice, seed=seed, num_workers=num_workers, splits=("heldout",)
    )
    clean = clean["heldout"].cast_column("audio", datasets.Audio(sampling_rate=16000))

    def degrade(row, index):
        audio = row["audio"]
        return {"audio": {"array": telephone_with_noise(audio["array"], seed, index), "sampling_rate": 16000}}

    noisy = clean.map(degrade, with_indices=True, desc="telephone band + 15 dB noise")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        datasets.DatasetDict({CONDITIONS[0]: clean, CONDITIONS[1]: noisy}).save_to_disk(str(staging / "set"))
        try:
            os.replace(staging / "set", path)
        except OSError:  # another run put its copy in place first: the same clips
            if not (path / "dataset_dict.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def summary(metrics: dict) -> dict:
    """What a report keeps of ``evaluate_model``'s figures: the headline with its interval and each
    voice's macro-F1."""
    keep = (
        "macro_f1",
        "macro_f1_ci_low",
        "macro_f1_ci_high",
        "unweighted_accuracy",
        "accuracy",
        "num_samples",
    )
    out = {key: metrics[key] for key in keep if key in metrics}
    out["per_speaker_macro_f1"] = {s: v["macro_f1"] for s, v in metrics.get("per_speaker", {}).items()}
    if "per_speaker_chance" in metrics:
        out["per_speaker_chance"] = metrics["per_speaker_chance"]
    return out


def evaluate_heldout(
    model,
    clips_per_voice: int = 6,
    seed: int = 0,
    batch_size: int = 8,
    bootstrap: int = 1000,
    classifier=None,
    enroll_per_speaker: int | None = None,
    enroll_self: bool = False,
) -> dict:
    """``{condition: summary}`` for the model folder ``model`` on both conditions, or ``{"skipped":
    reason}`` when the model's labels are not the corpus's (a model of other emotions). ``classifier``:
    its pipeline when already loaded. ``enroll_per_speaker``: K clips of each voice (neutral ones first)
    enrol it and are left out (``serhub.evaluate``); by default 2 for a speech classifier trained on
    speaker-normalised frames (``--speaker_norm``), which needs it, and none for any other model.
    ``enroll_self``: each voice enrolled on its own clips' audio instead (no label read, every clip
    scored; ``serhub.evaluate``), the default for a model trained so (``--speaker_reference own_clips``)."""
    from serhub.evaluate import evaluate_model
    from serhub.evaluate_data import model_labels
    from serhub.loading import load_classifier

    classifier = classifier if classifier is not None else load_classifier(str(model))
    path = heldout_dataset(clips_per_voice, seed)
    import datasets

    names = datasets.load_from_disk(str(path))[CONDITIONS[0]].features["emotion"].names
    if not set(names) <= set(model_labels(classifier)):
        missing = sorted(set(names) - set(model_labels(classifier)))
        return {
            "skipped": f"the model cannot answer {missing}, which the held-out set's clips are labelled with"
        }
    own_clips = getattr(classifier.model.config, "speaker_reference", None) == "own_clips"
    if enroll_self or (enroll_per_speaker is None and own_clips):  # as the model was trained
        enroll_self, enroll_per_speaker = True, None
    elif enroll_per_speaker is None and getattr(classifier.model.config, "speaker_normalization", None):
        enroll_per_speaker = DEFAULT_ENROLMENT
    scores = {
        condition: summary(
            evaluate_model(
                str(model),
                str(path),
                condition,
                batch_size=batch_size,
                bootstrap=bootstrap,
                progress=True,
                classifier=classifier,
                enroll_per_speaker=enroll_per_speaker,
                enroll_self=enroll_self,
            )[0]
        )  # fmt: skip
        for condition in CONDITIONS
    }
    if enroll_per_speaker or enroll_self:
        for s in scores.values():
            s["enrolled_clips_per_voice"] = "self" if enroll_self else enroll_per_speaker
    return scores


def heldout_markdown(scores: dict) -> str:
    """The model card's section on the held-out speech."""
    lines = ["", "## Speech from voices and sentences it never heard", ""]
    if "skipped" in scores:
        return "\n".join([*lines, f"Not scored: {scores['skipped']}.", ""])
    lines += [
        "`synthetic_emotions_v2`'s `heldout` split: espeak-ng voices and sentences that no training split "
        "holds, clean and over a telephone line (300-3400 Hz) with pink noise at 15 dB SNR "
        '(`serhub.heldout`). A voice\'s macro-F1 is over the emotions it has; "lowest voice by chance": the '
        "lowest of equally well recognised voices with these clip counts (random deals of the predictions "
        "within each class; its median and 95 % range).",
        "",
        "| condition | clips | macro-F1 | 95 % CI | UA | per voice: min / median / max | lowest voice by chance |",
        "|---|---|---|---|---|---|---|",
    ]
    for condition, s in scores.items():
        if not isinstance(s, dict):  # e.g. the seconds it took
            continue
        voices = sorted(s["per_speaker_macro_f1"].values())
        spread = f"{voices[0]:.2f} / {float(np.median(voices)):.2f} / {voices[-1]:.2f}" if voices else "-"
        interval = (
            f"{s['macro_f1_ci_low']:.3f} - {s['macro_f1_ci_high']:.3f}" if "macro_f1_ci_low" in s else "-"
        )
        chance = s.get("per_speaker_chance")
        by_chance = (
            f"{chance['chance_lowest']:.2f} ({chance['chance_lowest_low']:.2f} - {chance['chance_lowest_high']:.2f})"
            if chance
            else "-"
        )
        lines.append(
            f"| {condition} | {s.get('num_samples', '-')} | {s['macro_f1']:.3f} | {interval} | "
            f"{s['unweighted_accuracy']:.3f} | {spread} | {by_chance} |"
        )
    enrolled = next(
        (
            s["enrolled_clips_per_voice"]
            for s in scores.values()
            if isinstance(s, dict) and s.get("enrolled_clips_per_voice")
        ),
        None,
    )
    if enrolled == "self":
        lines += [
            "",
            "Each voice was enrolled on its own clips' audio (no label read); every clip is scored.",
        ]
    elif enrolled:
        lines += [
            "",
            f"Each voice was enrolled on {enrolled} of its clips (neutral ones first), left out of the figures.",
        ]
    return "\n".join([*lines, ""])


def main(argv=None) -> dict:
    """``python -m serhub.heldout --models DIR [DIR ...]``: each trained model's held-out scores, printed
    and written as JSON (what ``--heldout_eval`` adds to a recipe's report, for a model already trained)."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="trained serhub model folders")
    parser.add_argument("--clips_per_voice", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--output_json", default=None)
    parser.add_argument(
        "--enroll_per_speaker",
        type=int,
        default=None,
        help="enrol each voice on K of its clips, left out of the figures (default: 2 for a model trained with "
        "--speaker_norm or --speaker_prosody, else none; 0: none)",
    )
    parser.add_argument(
        "--enroll_self",
        action="store_true",
        help="enrol each voice on its own clips' audio instead (no label read, every clip scored)",
    )
    args = parser.parse_args(argv)
    if args.enroll_self and args.enroll_per_speaker:
        parser.error("--enroll_self and --enroll_per_speaker K are two references: give one of them")
    results = {}
    for model in args.models:
        start = time.time()
        results[model] = evaluate_heldout(
            model,
            args.clips_per_voice,
            args.seed,
            args.batch_size,
            enroll_per_speaker=args.enroll_per_speaker,
            enroll_self=args.enroll_self,
        )
        for condition, s in results[model].items():
            if isinstance(s, dict):
                print(
                    f"{model} {condition}: macro-F1 {s['macro_f1']:.3f} ({s['macro_f1_ci_low']:.3f}-"
                    f"{s['macro_f1_ci_high']:.3f}), UA {s['unweighted_accuracy']:.3f}, per voice min "
                    f"{min(s['per_speaker_macro_f1'].values()):.2f} [{time.time() - start:.0f} s]"
                )
            else:
                print(f"{model} {condition}: {s}")
    if args.output_json:
        from serhub.recipes.reporting import write_json

        write_json(
            args.output_json, {"clips_per_voice": args.clips_per_voice, "seed": args.seed, "models": results}
        )
    return results


__all__ = [
    "CONDITIONS",
    "evaluate_heldout",
    "heldout_dataset",
    "heldout_markdown",
    "main",
    "telephone_with_noise",
]


if __name__ == "__main__":
    main()
