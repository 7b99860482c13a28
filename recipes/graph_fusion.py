"""Graph-fusion SER (arXiv:2506.02088): several frozen speech encoders, the transcript's text
embedding, quantised F0 and a log-mel CNN as nodes of a graph, fused by graph attention.

    python -m serhub.recipes.graph_fusion                      # embedded default: Whisper tiny.en + base, MiniLM, swift-f0, CPU
    python -m serhub.recipes.graph_fusion --config recipes/configs/graph_fusion/paper_msp_podcast.yaml

As in the paper, the frozen parts run once: every split is reduced to each branch's summary
(per-layer frame means of the speech encoders, the text embedding of the ASR transcript, the F0-bin
histogram, the log-mel frames) and cached in ``<output_dir>/features/``. Every model then trains on the
cache only (AdamW, cosine schedule, weighted cross-entropy, the epoch best on validation kept). The
ablation trains each branch alone, the three fusions on all branches and GAT without F0 (the
paper's Table 3 on this data), plus a majority vote of the three fusions; the full GAT model is
saved as the model (``pipeline("audio-classification")`` takes audio only: the model transcribes it
itself). Writes eval_results.json (every row, test macro-F1 with its bootstrap interval),
ablation.csv / ablation.png, confusion_matrix.png and a card. A re-run reuses the cache and every
finished ablation row.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from serhub.datasets_scripts.common import class_counts
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics
from serhub.modeling import GraphFusionFeatureExtractor, GraphFusionForAudioClassification
from serhub.modeling.file_utils import atomic_write
from serhub.modeling.modeling_ensemble import hard_vote
from serhub.modeling.offline_assets import resolve_pretrained
from serhub.recipes.arguments import CONFIGS, DataArguments, RunArguments, start_run
from serhub.recipes.data import encode_labels, load_dataset_dict, require_splits, resolve_labels
from serhub.recipes.logs import get_logger, run_main
from serhub.recipes.reporting import write_json, write_model_card
from serhub.recipes.run_folders import claim_output_dir, fingerprint, run_settings
from transformers import TrainingArguments

DEFAULT_CONFIG = CONFIGS / "graph_fusion" / "default.yaml"
logger = get_logger("graph_fusion")


@dataclass
class GraphFusionArguments:
    speech_models: list[str] = field(
        default_factory=lambda: ["offline:whisper-tiny.en", "offline:whisper-base"],
        metadata={"help": "frozen speech encoders (paper: Whisper large-v3, WavLM, HuBERT, wav2vec2)"},
    )
    text_model: str | None = field(
        default="offline:minilm-l6-v2", metadata={"help": "paper: RoBERTa; empty: no text"}
    )
    asr_model: str | None = field(
        default="offline:whisper-tiny.en", metadata={"help": "writes the transcripts"}
    )
    transcripts: str = field(
        default="dataset", metadata={"help": "training/validation text: dataset (the corpus's own) | asr"}
    )
    test_transcripts: str = field(
        default="asr", metadata={"help": "test text: asr (the model's own ASR, as deployed) | dataset"}
    )
    transcript_column: str = "transcript"
    use_f0: bool = True
    use_spectral: bool = True
    fusion: str = field(
        default="gat", metadata={"help": "the saved model's fusion: gat | cross_attention | concat"}
    )
    hidden_size: int = 256
    fusion_heads: int = 4
    fusion_layers: int = 2
    mlp_size: int = 256
    dropout: float = 0.2
    modality_dropout: float = field(
        default=0.2, metadata={"help": "share of nodes masked per clip in training"}
    )
    f0_bins: int = 256
    spectral_channels: int = 16
    classification_loss: str = "weighted_ce"
    ablation: bool = field(default=True, metadata={"help": "train and score the ablation rows"})


# --------------------------------------------------------------------------------- the cache
CACHE_KEYS = ("text", "text_mask", "f0_histogram", "f0_mask")


def extract_split(model, fe, dataset, source: str, args: GraphFusionArguments, batch_size: int) -> dict:
    """One split through the frozen parts: every branch's summary, on the CPU, as tensors/lists."""
    from tqdm.auto import tqdm

    audio = dataset.cast_column("audio", datasets.Audio(sampling_rate=16000))
    parts: dict[str, list] = {}
    for start in tqdm(range(0, len(audio), batch_size), desc="frozen features", unit="batch"):
        rows = audio[start : start + batch_size]
        clips = [np.asarray(a["array"], dtype=np.float32) for a in rows["audio"]]
        inputs = fe(clips, sampling_rate=16000, return_tensors="pt")
        given = [t or "" for t in rows[args.transcript_column]] if source == "dataset" else None
        with torch.no_grad():
            s = model.summaries(
                inputs["input_features"], inputs["attention_mask"], inputs.get("pitch_hz"),
                inputs.get("input_values"), inputs.get("audio_attention_mask"), given,
            )  # fmt: skip
        lengths = inputs["attention_mask"].sum(-1).tolist()
        parts.setdefault("log_mel", []).extend(
            s["log_mel"][i, : int(n)].half() for i, n in enumerate(lengths)
        )
        for key, value in s.items():
            if key.startswith("speech_") or key in CACHE_KEYS:
                parts.setdefault(key, []).append(value.cpu())
            elif key == "transcripts":
                parts.setdefault(key, []).extend(value)
    out = {k: (torch.cat(v) if k != "log_mel" and k != "transcripts" else v) for k, v in parts.items()}
    out["labels"] = torch.tensor(list(dataset["labels"]))
    return out


def batch_of(cache: dict, index: list[int]) -> dict:
    """Rows of a cached split as the model's ``summaries`` (log-mel frames padded, with a mask)."""
    frames = [cache["log_mel"][i].float() for i in index]
    longest = max(f.shape[0] for f in frames)
    log_mel = torch.zeros(len(frames), longest, frames[0].shape[1])
    mask = torch.zeros(len(frames), longest, dtype=torch.bool)
    for j, f in enumerate(frames):
        log_mel[j, : len(f)] = f
        mask[j, : len(f)] = True
    out = {"log_mel": log_mel, "log_mel_mask": mask}
    for key, value in cache.items():
        if key.startswith("speech_") or key in CACHE_KEYS:
            out[key] = value[index]
    return out


# ------------------------------------------------------------------------------ training
def train_variant(base_state, config, caches, training_args, seed: int):
    """Train one configuration on the cache; returns the model at its best validation epoch."""
    torch.manual_seed(seed)
    model = GraphFusionForAudioClassification(config)
    missing, _ = model.load_state_dict(base_state, strict=False)  # the frozen parts, shared by every variant
    model.train()
    trainable = [p for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=training_args.learning_rate, weight_decay=training_args.weight_decay
    )
    train, valid = caches["train"], caches["validation"]
    n, batch = len(train["labels"]), training_args.per_device_train_batch_size
    steps = math.ceil(n / batch) * int(training_args.num_train_epochs)
    warmup = min(training_args.warmup_steps, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / (warmup + 1) if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))
    )  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    best, best_state, history = -1.0, None, []
    for epoch in range(int(training_args.num_train_epochs)):
        model.train()
        order = torch.randperm(n, generator=generator).tolist()
        total = 0.0
        for start in range(0, n, batch):
            index = order[start : start + batch]
            out = model.fuse(batch_of(train, index), train["labels"][index])
            optimizer.zero_grad()
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            total += out.loss.item() * len(index)
        score = evaluate(model, valid, config.labels)["macro_f1"]
        history.append({"epoch": epoch + 1, "loss": total / n, "validation_macro_f1": score})
        if score > best:
            best, best_state = (
                score,
                copy.deepcopy({k: v for k, v in model.state_dict().items() if k not in base_state}),
            )
    model.load_state_dict(best_state, strict=False)
    return model.eval(), history


@torch.no_grad()
def predict(model, cache: dict, batch_size: int = 64) -> torch.Tensor:
    model.eval()
    n = len(cache["labels"])
    return torch.cat(
        [
            model.fuse(batch_of(cache, list(range(s, min(n, s + batch_size))))).logits.softmax(-1)
            for s in range(0, n, batch_size)
        ]
    )


def evaluate(model, cache: dict, labels, bootstrap: int = 0, seed: int = 0, probabilities=None) -> dict:
    probabilities = predict(model, cache) if probabilities is None else probabilities
    return classification_metrics(
        [labels[i] for i in probabilities.argmax(-1).tolist()], [labels[i] for i in cache["labels"].tolist()],
        labels=labels, bootstrap=bootstrap, seed=seed,
    )  # fmt: skip


def encoder_names(speech_models: list[str]) -> list[str]:
    """The speech encoders as the table names them: "offline:whisper-tiny.en" -> "whisper-tiny.en", a
    Hub id or a folder -> its last part; a name two encoders share keeps their node number too."""
    short = [Path(str(m).removeprefix("offline:")).name or str(m) for m in speech_models]
    return [name if short.count(name) == 1 else f"{name} (speech_{i})" for i, name in enumerate(short)]


def row_label(row: str, speech_models: list[str]) -> str:
    """A planned row's name in the table: "speech_<i> alone" names the encoder by its model."""
    match = re.fullmatch(r"speech_(\d+) alone", row)
    return f"{encoder_names(speech_models)[int(match[1])]} alone" if match else row


def ablation_rows(args: GraphFusionArguments, available: list[str]) -> list[tuple[str, dict]]:
    """(row id, config overrides): each branch alone, the three fusions, GAT without F0. The id names
    the row's record in ``ablation/``; the table shows ``row_label``."""
    rows = [(f"{b} alone", {"branches": [b], "fusion": "gat"}) for b in available]
    rows += [
        (f"all, {f}", {"branches": available, "fusion": f}) for f in ("concat", "cross_attention", "gat")
    ]
    if "f0" in available:
        rows.append(("all but f0, gat", {"branches": [b for b in available if b != "f0"], "fusion": "gat"}))
    return rows


def safe_split_name(split: str) -> str:
    """A split name fit for a file name in the run folder (no separators, no "..")."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", split) or ".." in split:
        raise ValueError(f"split name {split!r}: use letters, digits, '_', '-' and '.' only (e.g. 'test')")
    return split


def frozen_features(base, fe, raw, splits, key, args, label_column, labels, out: Path, batch_size) -> dict:
    """Every split through the frozen parts once; later runs load ``features/<split>-<key>.pt``."""
    caches = {}
    for name, split in splits.items():
        path = out / "features" / f"{safe_split_name(split)}-{key[:16]}.pt"
        if path.is_file():
            # tensors, lists and strings only: a run folder received from elsewhere cannot run code here
            caches[name] = torch.load(path, weights_only=True)
            continue
        logger.info("frozen features of %s (%d clips), once", split, len(raw[split]))
        data = encode_labels(raw[split], label_column, labels)
        source = args.test_transcripts if name == "test" else args.transcripts
        caches[name] = extract_split(base, fe, data, source, args, batch_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp, c=caches[name]: torch.save(c, tmp))
    return caches


def table_row(row: str, label: str, validation: float, test: dict) -> dict:
    """One row of the table: ``model`` its name as shown, ``row`` its id (the record's name);
    ``test_ci`` None when no interval was drawn (--bootstrap 0)."""
    ci = [test["macro_f1_ci_low"], test["macro_f1_ci_high"]] if "macro_f1_ci_low" in test else None
    return {
        "model": label,
        "row": row,
        "validation_macro_f1": validation,
        "test_macro_f1": test["macro_f1"],
        "test_ci": ci,
        "test_ua": test["unweighted_accuracy"],
        "test": test,
    }


def run_ablation(plan, final_name, base, base_state, caches, labels, training_args, bootstrap, out: Path):
    """Train (or reload the finished record of) every planned row, then the vote of the three
    fusions; returns the table, the model of ``final_name`` and its training history."""
    rows, final_model, final_history = [], None, []
    probabilities: dict[str, dict[str, torch.Tensor]] = {"validation": {}, "test": {}}
    seed = training_args.seed
    speech_models = base.config.component_names.get("speech") or []
    for name, overrides in plan:
        record = out / "ablation" / f"{name.replace(', ', '_').replace(' ', '_')}.json"
        config = copy.deepcopy(base.config)
        for k, v in overrides.items():
            setattr(config, k, v)
        row = json.loads(record.read_text()) if record.is_file() else {}
        # the saved model is always the one trained now; a record without validation answers (an
        # older run's) is trained again, so the vote is scored on validation too
        if name == final_name or "validation_probabilities" not in row:
            logger.info("training %s", name)
            model, history = train_variant(base_state, config, caches, training_args, seed)
            row = {"model": name, "history": history}
            for split in probabilities:
                row[f"{split}_probabilities"] = predict(model, caches[split]).tolist()
            if name == final_name:
                final_model, final_history = model, history
            record.parent.mkdir(parents=True, exist_ok=True)
            write_json(record, row)
        for split in probabilities:
            probabilities[split][name] = torch.tensor(row[f"{split}_probabilities"])
        validation = evaluate(
            None, caches["validation"], labels, probabilities=probabilities["validation"][name]
        )
        test = evaluate(None, caches["test"], labels, bootstrap, seed, probabilities["test"][name])
        rows.append(table_row(name, row_label(name, speech_models), validation["macro_f1"], test))
    fusions = [
        f"all, {f}" for f in ("gat", "cross_attention", "concat") if f"all, {f}" in probabilities["test"]
    ]
    if len(fusions) >= 3:  # majority vote of the three fusions (ties: GAT's answer)
        voted = {
            split: hard_vote(torch.stack([probabilities[split][f] for f in fusions], 1), tie_breaker=0)
            for split in probabilities
        }
        validation = evaluate(None, caches["validation"], labels, probabilities=voted["validation"])
        test = evaluate(None, caches["test"], labels, bootstrap, seed, voted["test"])
        name = "vote of the 3 fusions"
        rows.append(table_row(name, name, validation["macro_f1"], test))
    return rows, final_model, final_history


def row_summary(row: dict) -> str:
    """A table row as one log line; an interval not drawn is said, not printed as nan."""
    low, high = row["test_ci"] or (None, None)
    ci = f"({low:.4f}-{high:.4f})" if row["test_ci"] else "(no interval: --bootstrap 0)"
    return f"{row['model']:<28} validation {row['validation_macro_f1']:.4f}  test {row['test_macro_f1']:.4f} {ci}"


def write_table(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(
        ["model", "validation_macro_f1", "test_macro_f1", "test_ci_low", "test_ci_high", "test_ua"]
    )
    for r in rows:  # no interval drawn (--bootstrap 0): empty cells
        ci = [round(v, 4) for v in r["test_ci"]] if r["test_ci"] else ["", ""]
        writer.writerow([r["model"], round(r["validation_macro_f1"], 4), round(r["test_macro_f1"], 4),
                         *ci, round(r["test_ua"], 4)])  # fmt: skip
    atomic_write(out / "ablation.csv", lambda tmp: tmp.write_text(table.getvalue()))
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    y = np.arange(len(rows))
    values = [r["test_macro_f1"] for r in rows]
    with_ci = all(r["test_ci"] for r in rows)
    err = (
        [
            [v - r["test_ci"][0] for v, r in zip(values, rows)],
            [r["test_ci"][1] - v for v, r in zip(values, rows)],
        ]
        if with_ci
        else None
    )
    ax.barh(y, values, xerr=err, color=["tab:grey" if "alone" in r["model"] else "tab:blue" for r in rows])
    ax.set_yticks(y, [r["model"] for r in rows], fontsize=8)
    ax.set_xlabel(
        "test macro-F1 (95 % bootstrap interval)" if with_ci else "test macro-F1 (no interval: --bootstrap 0)"
    )
    fig.tight_layout()
    atomic_write(out / "ablation.png", lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


# what main() parses (and every config in recipes/configs/graph_fusion/ must parse with)
ARGUMENTS = (GraphFusionArguments, DataArguments, RunArguments, TrainingArguments)


def main(argv=None):
    args, data_args, run_args, training_args, push_to_hub = start_run(ARGUMENTS, DEFAULT_CONFIG, argv)
    for name in ("transcripts", "test_transcripts"):
        if getattr(args, name) not in ("asr", "dataset"):
            raise ValueError(f"--{name} must be asr or dataset, got {getattr(args, name)!r}")
        if getattr(args, name) == "asr" and args.text_model and not args.asr_model:
            raise ValueError(f"--{name} asr needs --asr_model (or use dataset transcripts)")
    out = Path(training_args.output_dir)
    raw = load_dataset_dict(data_args.dataset_name_or_path, data_args)
    labels = resolve_labels(raw, data_args)
    splits = {
        "train": data_args.train_split,
        "validation": data_args.eval_split,
        "test": data_args.test_split,
    }
    require_splits(raw, list(splits.values()))
    settings = run_settings(
        training_args, labels, {s: raw[s] for s in splits.values()}, args, data_args, exclude=("bootstrap",)
    )
    run_lock = claim_output_dir(str(out), "graph_fusion", settings, run_args.overwrite_output_dir)  # noqa: F841
    start = time.time()
    counts = class_counts(
        encode_labels(raw[splits["train"]], data_args.label_column, labels), "labels", len(labels)
    )
    base = GraphFusionForAudioClassification.from_components(
        [resolve_pretrained(m) for m in args.speech_models],
        labels,
        text_model=resolve_pretrained(args.text_model) if args.text_model else None,
        asr_model=resolve_pretrained(args.asr_model) if args.asr_model else None,
        use_f0=args.use_f0, use_spectral=args.use_spectral, fusion=args.fusion, hidden_size=args.hidden_size,
        fusion_heads=args.fusion_heads, fusion_layers=args.fusion_layers, mlp_size=args.mlp_size,
        dropout=args.dropout, modality_dropout=args.modality_dropout, f0_bins=args.f0_bins, spectral_channels=args.spectral_channels,
        loss_type=args.classification_loss, class_counts=counts,
    )  # fmt: skip
    base.config.component_names = {
        "speech": args.speech_models, "text": args.text_model, "asr": args.asr_model, "f0": "swift-f0 (RMVPE stand-in)",
        "spectral": "log-mel CNN from scratch (CED-Small stand-in)",
    }  # fmt: skip
    fe = GraphFusionFeatureExtractor(
        feature_size=base.config.speech_configs[0].num_mel_bins, with_pitch=args.use_f0
    )
    # ---- the frozen parts, once per split (cached)
    key = fingerprint("graph_fusion-features", settings.get("data.train"), settings.get("data.validation"),
                      settings.get("data.test"), args.speech_models, args.text_model, args.asr_model,
                      args.transcripts, args.test_transcripts, args.use_f0, labels)  # fmt: skip
    caches = frozen_features(base, fe, raw, splits, key, args, data_args.label_column, labels, out,
                             training_args.per_device_eval_batch_size)  # fmt: skip
    feature_seconds = time.time() - start
    # the summaries standardised with training-set statistics (kept in the model: inference does the same)
    train_cache = caches["train"]
    base.feature_stats.fit(
        {k: v for k, v in train_cache.items() if k.startswith("speech_") or k == "text"},
        {"text": train_cache["text_mask"]} if "text_mask" in train_cache else None,
    )
    frozen = ("speech_encoders.", "text_encoder.", "asr.", "feature_stats.")
    base_state = {k: v for k, v in base.state_dict().items() if k.startswith(frozen)}
    available = base.config.available_branches()
    # ---- the ablation (each row resumable) and the saved model
    plan = ablation_rows(args, available) if args.ablation else []
    final_name = f"all, {args.fusion}"
    if final_name not in [name for name, _ in plan]:
        plan.append((final_name, {"branches": available, "fusion": args.fusion}))
    rows, final_model, final_history = run_ablation(
        plan, final_name, base, base_state, caches, labels, training_args, data_args.bootstrap, out
    )
    final = next(r for r in rows if r["row"] == final_name)
    # ---- save the model (with its tokenizers and feature extractor), the table, the card
    final_model.tokenizers = base.tokenizers
    final_model.config.branches = available
    final_model.save_pretrained(out)
    fe.save_pretrained(out)
    write_table(rows, out)
    from serhub.metrics.plotting import plot_confusion_matrix, plot_training_curves

    plot_confusion_matrix(
        final["test"]["confusion_matrix"],
        labels,
        out / "confusion_matrix.png",
        title=f"graph fusion ({final_name})",
    )
    plot_training_curves([{"epoch": h["epoch"], "loss": h["loss"], "eval_macro_f1": h["validation_macro_f1"]} for h in final_history],
                         out / "training_curves.png", title="graph fusion")  # fmt: skip
    transcripts = caches["test"].get("transcripts") or []
    summary = {
        "labels": labels,
        "ablation": [{k: v for k, v in r.items() if k != "test"} for r in rows],
        "components": base.config.component_names,
        "transcripts_from": {"train/validation": args.transcripts, "test": args.test_transcripts},
        "transcript_examples": transcripts[:5],
        "feature_extraction_s": round(feature_seconds, 1),
        "runtime_s": round(time.time() - start, 1),
    }
    results = {"test": final["test"]}
    write_json(out / "eval_results.json", {**results, **summary})
    write_model_card(
        out, template="graph_fusion.md", model_name="serhub-graph-fusion", labels=labels,
        dataset_name=data_args.dataset_name_or_path or "synthetic_emotions", results=results, tags=["graph_fusion"],
        rows=rows, components=base.config.component_names, fusion=args.fusion,
        model_id=training_args.hub_model_id,
    )  # fmt: skip
    if push_to_hub:
        from serhub.recipes.reporting import push

        push(str(out), training_args.hub_model_id, training_args.hub_private_repo)
    for r in rows:
        logger.info("%s", row_summary(r))
    return rows


if __name__ == "__main__":
    run_main(main)
