"""Evaluate an ensemble of trained models and every combination of its members (ABHINAYA, Table 4).

    python -m serhub.recipes.ensemble --members outputs/ssl_classifier outputs/whisper_llm outputs/text_llm
    python -m serhub.recipes.ensemble --members speech=outputs/ssl_classifier text=outputs/text_llm --tie_breaker speech

Members are audio classifiers (speech classifier, audio-LLMs) or text classifiers (text LLM, zero-shot),
told apart by their config; text members read one transcript per clip written once by ``--asr_model``
(``--use_dataset_transcripts`` takes the corpus's own instead). Each member runs once per split; then
every member alone and every combination of two or more, by hard vote (majority; a tie goes to the
tie-breaker, by default the member best on validation) and by soft vote (mean probabilities), is scored.
The output folder gets ``ensemble_table.csv`` / ``.png``, ``eval_results.json`` (every row, test macro-F1 with a
bootstrap interval) and the ensemble chosen on validation, saved as a model
(``pipeline("audio-classification")``) with a card that holds the table.
"""

from __future__ import annotations

import csv
import io
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics
from serhub.modeling import EnsembleConfig, EnsembleForAudioClassification
from serhub.modeling.file_utils import atomic_write
from serhub.modeling.modeling_ensemble import hard_vote, resolve_reference, soft_vote
from serhub.recipes.arguments import CONFIGS, DataArguments, RunArguments, start_run
from serhub.recipes.data import (
    encode_labels,
    load_dataset_dict,
    refuse_augment,
    require_splits,
    resolve_labels,
)
from serhub.recipes.logs import get_logger, run_main
from serhub.recipes.reporting import heldout_scores, push, write_eval_results, write_model_card
from serhub.recipes.run_folders import claim_output_dir, run_settings
from transformers import TrainingArguments

DEFAULT_CONFIG = CONFIGS / "ensemble" / "default.yaml"
logger = get_logger("ensemble")


@dataclass
class EnsembleArguments:
    members: list[str] = field(
        default_factory=list, metadata={"help": "model folders or Hub ids, each optionally as name=path"}
    )
    tie_breaker: str = field(
        default="best", metadata={"help": "a member name, or 'best' (best on validation)"}
    )
    asr_model: str = field(
        default="offline:whisper-tiny.en", metadata={"help": "writes the text members' transcripts"}
    )
    use_dataset_transcripts: bool = field(
        default=False, metadata={"help": "the corpus's transcripts instead of ASR"}
    )
    transcript_column: str = field(default="transcript")
    min_members: int = field(default=2, metadata={"help": "the smallest combination scored"})


def parse_members(entries: list[str]) -> list[dict]:
    """``name=path`` or ``path`` (named after its folder) -> member dicts, the input told by the config."""
    from serhub.modeling.remote_code import UntrustedModelError, check_model

    members = []
    for entry in entries:
        name, _, path = entry.rpartition("=") if "=" in entry else ("", "", entry)
        name = name or Path(path.rstrip("/")).name
        try:
            config = check_model(resolve_reference(path, None))  # config.json only; no code is run
        except UntrustedModelError as error:
            raise ValueError(f"ensemble member {name!r}: {error}") from error
        except (OSError, ValueError) as error:
            raise ValueError(
                f"ensemble member {name!r}: {path} is not a model folder or Hub id ({error})"
            ) from error
        text = config.get("model_type") == "ser_text_llm" or any(
            a.endswith("ForSequenceClassification") for a in (config.get("architectures") or [])
        )
        members.append({"name": name, "model": path, "input": "transcript" if text else "audio"})
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members, got {len(members)} (--members a b ...)")
    return members


def member_outputs(
    ensemble, dataset, args: EnsembleArguments, batch_size: int
) -> tuple[np.ndarray, list[str]]:
    """(N, M, C) member probabilities for a split, and the transcripts the text members read."""
    from tqdm.auto import tqdm

    audio = dataset.cast_column("audio", datasets.Audio(sampling_rate=16000))
    rows, transcripts = [], []
    for start in tqdm(range(0, len(audio), batch_size), desc="members", unit="batch"):
        part = audio[start : start + batch_size]
        clips = [np.asarray(a["array"], dtype=np.float32) for a in part["audio"]]
        given = [t or "" for t in part[args.transcript_column]] if args.use_dataset_transcripts else None
        with torch.no_grad():
            probabilities, written = ensemble.member_probabilities(clips, given)
        rows.append(probabilities.cpu().numpy())
        transcripts += written or []
    return np.concatenate(rows), transcripts


def score_table(
    probs: dict, refs: dict, names: list[str], labels, breaker: int, args, bootstrap, seed
) -> list[dict]:
    """Every member alone and every combination (hard and soft vote) on every split."""

    def metrics(split, predicted, boot=0):
        return classification_metrics(
            [labels[i] for i in predicted],
            [labels[i] for i in refs[split]],
            labels=labels,
            bootstrap=boot,
            seed=seed,
        )

    rows = []
    combos = [(i,) for i in range(len(names))]
    for k in range(max(2, args.min_members), len(names) + 1):
        combos += list(itertools.combinations(range(len(names)), k))
    for combo in combos:
        votings = ["single"] if len(combo) == 1 else ["hard", "soft"]
        for voting in votings:
            row = {"members": "+".join(names[i] for i in combo), "voting": voting, "size": len(combo)}
            for split, p in probs.items():
                sub = torch.as_tensor(p[:, list(combo)])
                if voting == "single":
                    combined = sub[:, 0]
                elif (
                    voting == "hard"
                ):  # the tie-breaker decides if it is in the combination, else its first member
                    combined = hard_vote(sub, combo.index(breaker) if breaker in combo else 0)
                else:
                    combined = soft_vote(sub)
                boot = bootstrap if split == "test" else 0
                m = metrics(split, combined.argmax(-1).tolist(), boot)
                row[f"{split}_macro_f1"] = m["macro_f1"]
                row[f"{split}_ua"] = m["unweighted_accuracy"]
                if boot:
                    row["test_macro_f1_ci"] = [m["macro_f1_ci_low"], m["macro_f1_ci_high"]]
            rows.append(row)
    return rows


def plot_table(rows: list[dict], split: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r[f"{split}_macro_f1"])
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.2))
    y = np.arange(len(rows))
    values = [r[f"{split}_macro_f1"] for r in rows]
    colours = [
        "tab:grey" if r["voting"] == "single" else ("tab:blue" if r["voting"] == "hard" else "tab:orange")
        for r in rows
    ]
    ax.barh(y, values, color=colours)
    if all("test_macro_f1_ci" in r for r in rows) and split == "test":
        lows = [v - r["test_macro_f1_ci"][0] for v, r in zip(values, rows)]
        highs = [r["test_macro_f1_ci"][1] - v for v, r in zip(values, rows)]
        ax.errorbar(values, y, xerr=[lows, highs], fmt="none", ecolor="black", lw=0.8)
    ax.set_yticks(y, [f"{r['members']} ({r['voting']})" for r in rows], fontsize=7)
    ax.set_xlabel(f"{split} macro-F1 (grey: one model, blue: hard vote, orange: soft vote)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


def write_csv(rows: list[dict], path) -> None:
    keys = [k for k in rows[0] if k != "test_macro_f1_ci"] + (
        ["test_ci_low", "test_ci_high"] if "test_macro_f1_ci" in rows[0] else []
    )
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(keys)
    for r in rows:
        values = [r.get(k) for k in keys if not k.startswith("test_ci")]
        if "test_macro_f1_ci" in r:
            values += list(r["test_macro_f1_ci"])
        writer.writerow([round(v, 4) if isinstance(v, float) else v for v in values])
    atomic_write(path, lambda tmp: tmp.write_text(table.getvalue()))


# what main() parses (and every config in recipes/configs/ensemble/ must parse with)
ARGUMENTS = (EnsembleArguments, DataArguments, RunArguments, TrainingArguments)


def run_members(
    ensemble, raw, splits: list[str], names: list[str], labels: list[str], args, data_args, batch_size: int
):
    """Every member's class probabilities on each split, the transcripts the text members read, and the
    reference labels: the members run once, and every combination is scored from these."""
    probs, refs, transcripts = {}, {}, {}
    for split in splits:
        data = encode_labels(raw[split], data_args.label_column, labels)
        logger.info("running the %d members on %s (%d clips)", len(names), split, len(data))
        probs[split], transcripts[split] = member_outputs(ensemble, data, args, batch_size)
        refs[split] = list(data["labels"])
    return probs, refs, transcripts


def pick_tie_breaker(probs, refs, names: list[str], labels: list[str], valid: str, tie_breaker: str) -> str:
    """--tie_breaker, or for "best" the member with the highest validation macro-F1 on its own."""
    alone = {
        n: classification_metrics(
            [labels[i] for i in probs[valid][:, j].argmax(-1)],
            [labels[i] for i in refs[valid]],
            labels=labels,
        )["macro_f1"]
        for j, n in enumerate(names)
    }
    return max(alone, key=alone.get) if tie_breaker == "best" else tie_breaker


def save_chosen(out: str, members: list[dict], best: dict, breaker: str, args, labels: list[str]) -> None:
    """The chosen ensemble saved as configuration and code: its members were loaded and checked while
    scoring, and are not loaded a second time just to be written down."""
    chosen = [m for m in members if m["name"] in best["members"].split("+")]
    final = EnsembleForAudioClassification(
        EnsembleConfig(
            chosen,
            voting=best["voting"],
            tie_breaker=breaker if breaker in best["members"].split("+") else chosen[0]["name"],
            asr_model=args.asr_model if any(m["input"] == "transcript" for m in chosen) else None,
            labels=labels,
        )
    )
    final.save_pretrained(out)


def write_results(
    out: str,
    rows: list[dict],
    best: dict,
    summary: dict,
    split: str,
    labels: list[str],
    data_args,
    training_args,
) -> None:
    """eval_results.json (the chosen ensemble's scores on ``split`` + ``summary``) and the model card."""
    results = {
        split: {
            "macro_f1": best[f"{split}_macro_f1"],
            "unweighted_accuracy": best[f"{split}_ua"],
        }
    }
    if f"{split}_macro_f1_ci" in best:  # the bootstrap interval, as the other recipes write it
        results[split]["macro_f1_ci_low"], results[split]["macro_f1_ci_high"] = best[f"{split}_macro_f1_ci"]
    card = dict(
        template="ensemble.md",
        model_name="serhub-ensemble",
        labels=labels,
        dataset_name=data_args.dataset_name_or_path or "synthetic_emotions",
        results=results,
        tags=["ensemble"],
        rows=sorted(rows, key=lambda r: -r[f"{split}_macro_f1"]),
        split=split,
        chosen=best,
        members=summary["members"],
        tie_breaker=summary["tie_breaker"],
        model_id=training_args.hub_model_id,
    )
    write_eval_results(out, {**results, **summary})
    write_model_card(out, **card)
    heldout = heldout_scores(out, data_args)
    if heldout:  # written again with them: a long or stopped held-out pass loses nothing written above
        write_eval_results(out, {**results, **summary, "heldout": heldout})
        write_model_card(out, **card, heldout=heldout)


def main(argv=None):
    args, data_args, run_args, training_args, push_to_hub = start_run(ARGUMENTS, DEFAULT_CONFIG, argv)
    refuse_augment(data_args, "ensemble", "does not train (it combines trained models)")
    members = parse_members(args.members)
    names = [m["name"] for m in members]
    if args.tie_breaker != "best" and args.tie_breaker not in names:
        raise ValueError(f"--tie_breaker {args.tie_breaker!r} is not a member; members: {names} (or 'best')")
    out = training_args.output_dir
    raw = load_dataset_dict(data_args.dataset_name_or_path, data_args)
    labels = resolve_labels(raw, data_args)
    splits = [s for s in (data_args.eval_split, data_args.test_split) if s]
    require_splits(raw, splits)
    settings = run_settings(training_args, labels, {s: raw[s] for s in splits}, args, data_args)
    run_lock = claim_output_dir(out, "ensemble", settings, run_args.overwrite_output_dir)  # noqa: F841
    ensemble = EnsembleForAudioClassification.from_members(
        members,
        voting="hard",
        asr_model=None if args.use_dataset_transcripts else args.asr_model,
        labels=labels,
    )
    start = time.time()
    probs, refs, transcripts = run_members(
        ensemble, raw, splits, names, labels, args, data_args, training_args.per_device_eval_batch_size
    )
    valid, test = data_args.eval_split, data_args.test_split
    breaker = pick_tie_breaker(probs, refs, names, labels, valid, args.tie_breaker)
    rows = score_table(
        probs, refs, names, labels, names.index(breaker), args, data_args.bootstrap, training_args.seed
    )
    best = max((r for r in rows if r["voting"] != "single"), key=lambda r: r[f"{valid}_macro_f1"])
    save_chosen(out, members, best, breaker, args, labels)
    report_split = test or valid
    write_csv(rows, Path(out) / "ensemble_table.csv")
    plot_table(rows, report_split, Path(out) / "ensemble_table.png")
    best_member = max(rows[: len(names)], key=lambda r: r[f"{valid}_macro_f1"])
    summary = {
        "members": members,
        "tie_breaker": breaker,
        "chosen_on_validation": {"members": best["members"], "voting": best["voting"]},
        "best_member_on_validation": best_member["members"],
        "table": rows,
        "transcripts_from": "dataset" if args.use_dataset_transcripts else args.asr_model,
        "transcript_examples": (transcripts.get(report_split) or [])[:5],
        "runtime_s": round(time.time() - start, 1),
        "labels": labels,
    }
    write_results(out, rows, best, summary, report_split, labels, data_args, training_args)
    if push_to_hub:
        push(out, training_args.hub_model_id, training_args.hub_private_repo)
    logger.info(
        "best on %s: %s (%s vote), %s macro-F1 %.4f; best member %s %.4f; table in %s/ensemble_table.csv",
        valid, best["members"], best["voting"], report_split, best[f"{report_split}_macro_f1"],
        best_member["members"], best_member[f"{report_split}_macro_f1"], out,
    )  # fmt: skip
    return rows


if __name__ == "__main__":
    run_main(main)
