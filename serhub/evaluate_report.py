"""The files of ``serhub evaluate`` that people read: the Markdown report card, the reliability diagram
and the ``model-index`` results for a model card."""

from __future__ import annotations

import os
from pathlib import Path

HEADLINE = {"macro_f1": "Macro-F1", "unweighted_accuracy": "UA", "accuracy": "WA"}


def model_index_yaml(results: dict) -> str:
    """``model-index`` metadata (huggingface_hub's ``ModelCardData``): paste it into a model card's
    YAML header, or pass the same ``EvalResult``s to ``ModelCard.from_template``."""
    from huggingface_hub import EvalResult, ModelCardData

    dataset = Path(results["dataset"]).name or results["dataset"]
    evals = [
        EvalResult(
            task_type="audio-classification",
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split=results["split"],
            metric_type=key,
            metric_name=name,
            metric_value=round(float(results[key]), 4),
        )
        for key, name in HEADLINE.items()
    ]
    name = Path(results["model"]).name or results["model"]
    return ModelCardData(model_name=name, eval_results=evals).to_yaml() + "\n"


def plot_reliability(calibration: dict, path: str | os.PathLike, title: str = "") -> Path:
    """Accuracy against confidence per bin (a calibrated model follows the diagonal), clip counts below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from serhub.modeling.file_utils import atomic_write

    bins = calibration["bins"]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    width = (bins[0]["high"] - bins[0]["low"]) if bins else 0.1
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    top.bar(centres, [b["accuracy"] for b in bins], width=width, edgecolor="black", label="accuracy")
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    top.plot(
        [b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="C3", label="bin mean"
    )
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(f"{title}\nECE {calibration['ece']:.3f}" if title else f"ECE {calibration['ece']:.3f}")
    bottom.bar(centres, [b["count"] for b in bins], width=width, color="grey", edgecolor="black")
    bottom.set_xlabel("confidence of the predicted label")
    bottom.set_ylabel("clips")
    bottom.set_xlim(0, 1)
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    finally:
        plt.close(fig)


def plot_coverage(abstention: dict, path: str | os.PathLike, title: str = "") -> Path:
    """Accuracy on the answered clips and the share answered against the abstention threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from serhub.modeling.file_utils import atomic_write

    curve = abstention["curve"]
    thresholds = [p["threshold"] for p in curve]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(thresholds, [p["coverage"] for p in curve], "-o", ms=3, label="coverage (share answered)")
    kept = [p for p in curve if p["accuracy"] is not None]
    ax.plot(
        [p["threshold"] for p in kept], [p["accuracy"] for p in kept], "-o", ms=3, label="accuracy answered"
    )
    ax.axvline(
        abstention["threshold"], color="grey", ls="--", label=f"--abstain_below {abstention['threshold']}"
    )
    ax.set_xlabel('confidence threshold (below: "uncertain")')
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, 1)
    ax.legend(loc="lower left", fontsize=8)
    if title:
        ax.set_title(title)
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    finally:
        plt.close(fig)


def _abstention(results: dict) -> list[str]:
    a = results["abstention"]
    answered = "–" if a["accuracy_answered"] is None else f"{a['accuracy_answered']:.3f}"
    lines = [
        "## Abstention",
        "",
        f'Clips whose top-label confidence is under {a["threshold"]} are answered "uncertain" (the `answer` '
        f"column of `predictions.csv`): {a['abstained']} of {results['num_samples']}, coverage "
        f"{a['coverage']:.3f}; accuracy on the answered clips {answered} against {a['accuracy_all']:.3f} on "
        "all. The figures above are forced-choice (every clip answered).",
        "",
        "| threshold | coverage | accuracy answered |",
        "|---|---|---|",
    ]
    for p in a["curve"]:
        acc = "–" if p["accuracy"] is None else f"{p['accuracy']:.3f}"
        lines.append(f"| {p['threshold']:.2f} | {p['coverage']:.3f} | {acc} |")
    return [*lines, "", "![coverage and accuracy](coverage_accuracy.png)", ""]


def _figure(results: dict, key: str) -> str:
    low = results.get(f"{key}_ci_low")
    interval = f" | {low:.3f}–{results[f'{key}_ci_high']:.3f}" if low is not None else " | –"
    return f"| {HEADLINE[key]} | {results[key]:.3f}{interval} |"


def _group_table(title: str, groups: dict, chance: dict | None = None) -> list[str]:
    lines = [f"## {title}", ""]
    if chance:
        lines += [
            f"Macro-F1 over the classes each group has. The lowest speaker scores {chance['observed_lowest']:.3f}; "
            f"with these clip counts the lowest of equally well recognised speakers would be "
            f"{chance['chance_lowest']:.3f} ({chance['chance_lowest_low']:.3f} - {chance['chance_lowest_high']:.3f}, "
            f"{chance['resamples']} random deals of the predictions within each class; p = {chance['p_value']:.2f} "
            "for a lowest this low by chance).",
            "",
        ]
    lines += ["| group | clips | Macro-F1 | UA | WA |", "|---|---|---|---|---|"]
    for group, m in groups.items():
        lines.append(
            f"| {group} | {m['count']} | {m['macro_f1']:.3f} | {m['unweighted_accuracy']:.3f} | {m['accuracy']:.3f} |"
        )
    return [*lines, ""]


def _settings(results: dict) -> list[str]:
    lines = [
        f"- model: `{results['model']}`",
        f"- dataset: `{results['dataset']}`, split `{results['split']}`, {results['num_samples']} clips",
        f"- labels scored: {', '.join(results['labels'])}",
    ]
    enrolled = results.get("speaker_enrolment")
    if enrolled and enrolled["clips_per_speaker"] == "self":
        lines.append(
            f"- each speaker enrolled on their own clips' audio (up to {enrolled['max_reference_clips']} of them, "
            "no label read; every clip scored)"
        )
    elif enrolled:
        lines.append(
            f"- each speaker enrolled on {enrolled['clips_per_speaker']} of their clips "
            f"({enrolled['label'] or 'any'} ones first; {enrolled['clips_left_out']} clips left out of the figures)"
        )
    elif results.get("speaker_normalization"):
        lines.append(
            f"- the model was trained relative to each speaker ({results['speaker_normalization']}); "
            "scored here without a speaker reference, unlike the recipe's own test figures"
        )
    if results["label_map"]:
        pairs = ", ".join(f"{k} → {v}" for k, v in results["label_map"].items())
        lines.append(f"- label map: {pairs}")
    if results["label_map_unused"]:
        lines.append(
            f"- label map entries for labels absent from this split: {', '.join(results['label_map_unused'])}"
        )
    if results["candidate_labels"]:
        lines.append(
            "- the model was restricted to the candidate labels (probabilities renormalised over them)"
        )
    if results["unlabelled_rows_left_out"]:
        lines.append(f"- {results['unlabelled_rows_left_out']} rows without a label were left out")
    if results.get("outside_label_set_left_out"):
        lines.append(
            f"- {results['outside_label_set_left_out']} clips with a label outside the shared label set were left out"
        )
    if results["classes_without_references"]:
        absent = ", ".join(results["classes_without_references"])
        lines.append(
            f"- classes without a reference in this split: {absent}; Macro-F1 counts them as 0, over the "
            f"classes present it is {results['macro_f1_present']:.3f}"
        )
    return [*lines, ""]


def _reproducibility(results: dict) -> list[str]:
    """The hashes that say what the figures were computed on (compare two reports by them)."""
    r = results.get("reproducibility")
    if not r:
        return []
    split = r["split"]
    lines = [
        "## Reproducibility",
        "",
        "sha256 of the sorted clip ids (one per line), as the dataset's `manifest.json` writes them:",
        "",
        f"- split `{results['split']}`: clip ids `{split['clip_ids_sha256']}`",
    ]
    if "speakers_sha256" in split:
        lines.append(f"- split `{results['split']}`: speakers `{split['speakers_sha256']}`")
    lines.append(f"- the {r['evaluated_clips']} clips scored: `{r['evaluated_clip_ids_sha256']}`")
    lines.append(f"- the model's `config.json`: `{r['model_config_sha256']}`")
    if r["dataset_manifest"]:
        lines.append(f"- against the dataset's `manifest.json`: {r['dataset_manifest']}")
    return [*lines, ""]


def report_markdown(results: dict) -> str:
    """The report card: settings, headline figures with intervals, per class / speaker / gender,
    calibration and the figures' files."""
    boot = results["bootstrap"]
    lines = [f"# {Path(results['model']).name} on {Path(results['dataset']).name} ({results['split']})", ""]
    lines += _settings(results)
    lines += [
        "## Scores",
        "",
        f"| metric | value | 95 % interval ({boot} bootstrap resamples of the clips) |",
    ]
    lines += ["|---|---|---|", *(_figure(results, key) for key in HEADLINE), ""]
    lines += ["## Per class", "", "| class | support | precision | recall | F1 |", "|---|---|---|---|---|"]
    for label, m in results["per_class"].items():
        lines.append(
            f"| {label} | {m['support']} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} |"
        )
    lines += ["", "![confusion matrix](confusion_matrix.png)", ""]
    for key, title in (("per_speaker", "Per speaker"), ("per_gender", "Per gender")):
        if key in results:
            lines += _group_table(
                title, results[key], results.get("per_speaker_chance") if key == "per_speaker" else None
            )
    cal = results["calibration"]
    lines += [
        "## Calibration",
        "",
        f"Expected calibration error (ECE; {cal['num_bins']} equal-width bins of the top label's confidence, "
        f"{len(cal['bins'])} of them used): **{cal['ece']:.3f}**; mean confidence {cal['mean_confidence']:.3f} "
        f"against accuracy {results['accuracy']:.3f}.",
        "",
        "![reliability diagram](reliability_diagram.png)",
        "",
    ]
    if "abstention" in results:
        lines += _abstention(results)
    lines += _reproducibility(results)
    lines += [
        "## Files",
        "",
        "`predictions.csv` (one row per clip, every probability), `eval_results.json` (every figure), "
        "`model_index.yaml` (`model-index` results for a model card), `confusion_matrix.png`, "
        "`reliability_diagram.png`" + (", `coverage_accuracy.png`." if "abstention" in results else "."),
        "",
    ]
    return "\n".join(lines)


__all__ = ["model_index_yaml", "plot_coverage", "plot_reliability", "report_markdown"]
