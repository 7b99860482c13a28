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

Beside it: ``graph_fusion_features`` (the frozen parts' cache), ``graph_fusion_training`` (one
configuration trained and scored on it), ``graph_fusion_ablation`` (the rows, the vote, the table).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from serhub.datasets_scripts.common import class_counts
from serhub.metrics.ser_metrics.ser_metrics import speaker_scores
from serhub.modeling import GraphFusionFeatureExtractor, GraphFusionForAudioClassification
from serhub.modeling.offline_assets import resolve_pretrained
from serhub.recipes.arguments import CONFIGS, DataArguments, RunArguments, start_run
from serhub.recipes.data import (
    encode_labels,
    load_dataset_dict,
    refuse_augment,
    require_splits,
    resolve_labels,
)
from serhub.recipes.graph_fusion_ablation import (  # noqa: F401 (encoder_names, row_label, table_row: importable from here)
    ablation_rows,
    encoder_names,
    row_label,
    row_summary,
    run_ablation,
    table_row,
    write_table,
)
from serhub.recipes.graph_fusion_features import (  # noqa: F401 (batch_of, extract_split, safe_split_name too)
    CACHE_KEYS,
    batch_of,
    extract_split,
    frozen_features,
    safe_split_name,
    speaker_prosody_caches,
)
from serhub.recipes.graph_fusion_training import evaluate, predict, train_variant  # noqa: F401
from serhub.recipes.logs import get_logger, run_main
from serhub.recipes.reporting import heldout_scores, write_eval_results, write_model_card
from serhub.recipes.run_folders import claim_output_dir, fingerprint, run_settings
from serhub.recipes.speaker_prosody import (
    DEFAULT_ENROLMENT,
    SPEAKER_PROSODY_NOTE,
    check_speaker_data,
    measuring_feature_extractor,
)
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
    speaker_prosody: bool = field(
        default=False,
        metadata={
            "help": "one more node: ten measured prosody numbers per clip (pitch level, spread and movement, "
            "voicing, rhythm) minus the speaker's reference, their mean over 2 of the speaker's clips, neutral "
            "first (--speaker_column); at inference the speaker is enrolled (model.enroll_speaker, serhub "
            "evaluate --enroll_per_speaker). Needs swift-f0"
        },
    )


# what main() parses (and every config in recipes/configs/graph_fusion/ must parse with)
ARGUMENTS = (GraphFusionArguments, DataArguments, RunArguments, TrainingArguments)


def check_transcript_sources(args: GraphFusionArguments) -> None:
    for name in ("transcripts", "test_transcripts"):
        if getattr(args, name) not in ("asr", "dataset"):
            raise ValueError(f"--{name} must be asr or dataset, got {getattr(args, name)!r}")
        if getattr(args, name) == "asr" and args.text_model and not args.asr_model:
            raise ValueError(f"--{name} asr needs --asr_model (or use dataset transcripts)")


def load_data(args, data_args, run_args, training_args):
    """The dataset, its labels, ``{role: split name}`` and the run's settings; claims the run folder
    (the lock returned is held while the caller keeps it)."""
    raw = load_dataset_dict(data_args.dataset_name_or_path, data_args)
    labels = resolve_labels(raw, data_args)
    splits = {
        "train": data_args.train_split,
        "validation": data_args.eval_split,
        "test": data_args.test_split,
    }
    require_splits(raw, list(splits.values()))
    if args.speaker_prosody:  # before the run claims its folder
        check_speaker_data("--speaker_prosody", data_args, raw[splits["train"]].column_names)
    settings = run_settings(
        training_args, labels, {s: raw[s] for s in splits.values()}, args, data_args, exclude=("bootstrap",)
    )
    out = Path(training_args.output_dir)
    run_lock = claim_output_dir(str(out), "graph_fusion", settings, run_args.overwrite_output_dir)
    return raw, labels, splits, settings, run_lock


def build_base(args: GraphFusionArguments, labels: list[str], counts: list[int]):
    """The model around the pretrained parts (frozen), its heads random: every row starts from it."""
    base = GraphFusionForAudioClassification.from_components(
        [resolve_pretrained(m) for m in args.speech_models],
        labels,
        text_model=resolve_pretrained(args.text_model) if args.text_model else None,
        asr_model=resolve_pretrained(args.asr_model) if args.asr_model else None,
        use_f0=args.use_f0, use_spectral=args.use_spectral, fusion=args.fusion, hidden_size=args.hidden_size,
        fusion_heads=args.fusion_heads, fusion_layers=args.fusion_layers, mlp_size=args.mlp_size,
        dropout=args.dropout, modality_dropout=args.modality_dropout, f0_bins=args.f0_bins, spectral_channels=args.spectral_channels,
        loss_type=args.classification_loss, class_counts=counts, speaker_prosody=args.speaker_prosody,
    )  # fmt: skip
    base.config.component_names = {
        "speech": args.speech_models, "text": args.text_model, "asr": args.asr_model, "f0": "swift-f0 (RMVPE stand-in)",
        "spectral": "log-mel CNN from scratch (CED-Small stand-in)",
    }  # fmt: skip
    if args.speaker_prosody:
        base.config.component_names["speaker_prosody"] = (
            f"ten measured prosody numbers (swift-f0 pitch, voicing, rhythm) minus the speaker's reference "
            f"(training: each voice's first {DEFAULT_ENROLMENT} clips, neutral first; use: enroll_speaker), "
            "through a small MLP"
        )
    return base


def standardized_base_state(base, train_cache: dict) -> dict:
    """The summaries standardised with training-set statistics (kept in the model: inference does the
    same); returns the frozen part of ``base``'s state, shared by every row."""
    base.feature_stats.fit(
        {k: v for k, v in train_cache.items() if k.startswith("speech_") or k == "text"},
        {"text": train_cache["text_mask"]} if "text_mask" in train_cache else None,
    )
    frozen = ("speech_encoders.", "text_encoder.", "asr.", "feature_stats.", "prosody.")
    return {k: v for k, v in base.state_dict().items() if k.startswith(frozen)}


def with_test_speakers(final, model, caches, test_split, labels, data_args, training_args) -> dict:
    """The saved model's test scores with each test speaker's macro-F1 (and the lowest expected by
    chance), when the test split names its speakers."""
    if data_args.speaker_column not in test_split.column_names:
        return final["test"]
    predicted = [labels[i] for i in predict(model, caches["test"]).argmax(-1).tolist()]
    references = [labels[i] for i in caches["test"]["labels"].tolist()]
    speakers = list(test_split[data_args.speaker_column])
    return {
        **final["test"],
        **speaker_scores(predicted, references, speakers, labels, data_args.bootstrap, training_args.seed),
    }


def plot_final(final: dict, final_name: str, history: list[dict], labels: list[str], out: Path) -> None:
    from serhub.metrics.plotting import plot_confusion_matrix, plot_training_curves

    plot_confusion_matrix(
        final["test"]["confusion_matrix"],
        labels,
        out / "confusion_matrix.png",
        title=f"graph fusion ({final_name})",
    )
    plot_training_curves([{"epoch": h["epoch"], "loss": h["loss"], "eval_macro_f1": h["validation_macro_f1"]} for h in history],
                         out / "training_curves.png", title="graph fusion")  # fmt: skip


def run_summary(args, base, rows, caches, labels, feature_seconds: float, start: float) -> dict:
    """eval_results.json beside the final model's test scores: the table, the parts, the transcripts."""
    transcripts = caches["test"].get("transcripts") or []
    return {
        "labels": labels,
        "ablation": [{k: v for k, v in r.items() if k != "test"} for r in rows],
        "components": base.config.component_names,
        "transcripts_from": {"train/validation": args.transcripts, "test": args.test_transcripts},
        "transcript_examples": transcripts[:5],
        "feature_extraction_s": round(feature_seconds, 1),
        "runtime_s": round(time.time() - start, 1),
    }


def main(argv=None):
    args, data_args, run_args, training_args, push_to_hub = start_run(ARGUMENTS, DEFAULT_CONFIG, argv)
    refuse_augment(data_args, "graph_fusion", "caches its frozen encoders' features of the clean audio")
    check_transcript_sources(args)
    out = Path(training_args.output_dir)
    raw, labels, splits, settings, run_lock = load_data(args, data_args, run_args, training_args)  # noqa: F841
    start = time.time()
    # ---- the model's frozen parts, once per split (cached)
    counts = class_counts(
        encode_labels(raw[splits["train"]], data_args.label_column, labels), "labels", len(labels)
    )
    base = build_base(args, labels, counts)
    fe = GraphFusionFeatureExtractor(
        feature_size=base.config.speech_configs[0].num_mel_bins, with_pitch=args.use_f0
    )
    key = fingerprint("graph_fusion-features", settings.get("data.train"), settings.get("data.validation"),
                      settings.get("data.test"), args.speech_models, args.text_model, args.asr_model,
                      args.transcripts, args.test_transcripts, args.use_f0, labels)  # fmt: skip
    caches = frozen_features(base, fe, raw, splits, key, args, data_args.label_column, labels, out,
                             training_args.per_device_eval_batch_size)  # fmt: skip
    if args.speaker_prosody:  # beside the cache: measured once per run
        base.prosody.set_statistics(
            *speaker_prosody_caches(
                caches,
                raw,
                splits,
                data_args.label_column,
                labels,
                data_args.speaker_column,
                data_args.speaker_reference,
            )  # fmt: skip
        )
        base.config.speaker_normalization = SPEAKER_PROSODY_NOTE  # serhub.heldout and evaluate enrol
        base.config.speaker_reference = data_args.speaker_reference
        fe = measuring_feature_extractor(fe)  # the saved extractor measures each clip's numbers
    feature_seconds = time.time() - start
    base_state = standardized_base_state(base, caches["train"])
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
    test_scores = with_test_speakers(
        final, final_model, caches, raw[splits["test"]], labels, data_args, training_args
    )
    # ---- save the model (with its tokenizers and feature extractor), the table, the card
    final_model.tokenizers = base.tokenizers
    final_model.config.branches = available
    if args.speaker_prosody:
        final_model.config.speaker_normalization = SPEAKER_PROSODY_NOTE
        final_model.config.speaker_reference = data_args.speaker_reference
    final_model.save_pretrained(out)
    fe.save_pretrained(out)
    write_table(rows, out)
    plot_final(final, final_name, final_history, labels, out)
    summary = run_summary(args, base, rows, caches, labels, feature_seconds, start)
    results = {"test": test_scores}
    card = dict(
        template="graph_fusion.md", model_name="serhub-graph-fusion", labels=labels,
        dataset_name=data_args.dataset_name_or_path or "synthetic_emotions", results=results, tags=["graph_fusion"],
        rows=rows, components=base.config.component_names, fusion=args.fusion,
        model_id=training_args.hub_model_id,
    )  # fmt: skip
    write_eval_results(out, {**results, **summary})
    write_model_card(out, **card)
    heldout = heldout_scores(str(out), data_args)
    if heldout:  # written again with them: a long or stopped held-out pass loses nothing written above
        write_eval_results(out, {**results, **summary, "heldout": heldout})
        write_model_card(out, **card, heldout=heldout)
    if push_to_hub:
        from serhub.recipes.reporting import push

        push(str(out), training_args.hub_model_id, training_args.hub_private_repo)
    for r in rows:
        logger.info("%s", row_summary(r))
    return rows


if __name__ == "__main__":
    run_main(main)
