"""What version 2 of the synthetic corpus (:mod:`synthetic_emotions_v2`) promises, checked on the built
splits: no voice, variant or sentence in two splits (:func:`check_unseen`), and per class the duration,
silences and level of the stored audio (:func:`acoustic_report`); :func:`format_report` is the table
the builder prints and writes into the card."""

from __future__ import annotations

import io

import numpy as np

from .synthetic_emotions_v2_audio import _speech_span, speech_level_db


def _variant(speaker_id: str) -> str:
    return speaker_id.split("+", 1)[1] if "+" in speaker_id else speaker_id


def _normalise(text: str) -> str:
    return " ".join("".join(ch for ch in text.lower() if ch.isalnum() or ch.isspace()).split())


def leakage_report(dataset_dict, train_split: str = "train") -> dict:
    """Overlaps between splits of voices (``speaker_id``), variants (the part after "+", so one
    variant in two accents counts) and sentences (case and punctuation ignored): every count must
    be 0. Also the number of distinct voices / variants / accents / sentences per split."""
    columns = {s: (dataset_dict[s]["speaker_id"], dataset_dict[s]["transcript"]) for s in dataset_dict}
    sets = {
        s: {
            "voices": set(speakers),
            "variants": {_variant(v) for v in speakers},
            "accents": {v.split("+", 1)[0] for v in speakers},
            "sentences": {_normalise(t) for t in texts},
        }
        for s, (speakers, texts) in columns.items()
    }
    splits = list(sets)
    overlaps = {}
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            for what in ("voices", "variants", "sentences"):
                shared = sorted(sets[a][what] & sets[b][what])
                overlaps[f"{what} {a}&{b}"] = shared
    return {
        "counts": {s: {what: len(values) for what, values in sets[s].items()} for s in splits},
        "overlaps": overlaps,
    }


def check_unseen(dataset_dict) -> dict:
    """Raise ``ValueError`` naming every voice, variant or sentence found in two splits (all of them
    at once); return the :func:`leakage_report` otherwise."""
    report = leakage_report(dataset_dict)
    leaks = [
        f"{name}: {', '.join(shared[:5])}" + (f" (+{len(shared) - 5})" if len(shared) > 5 else "")
        for name, shared in report["overlaps"].items()
        if shared
    ]
    if leaks:
        raise ValueError(
            "validation/test speech is not unseen; in two splits: " + "; ".join(leaks) + ". Rebuild with "
            "disjoint voices and sentence banks (split_voices / split_sentence_banks)."
        )
    return report


def acoustic_report(dataset_dict, split: str | None = None) -> dict[str, dict[str, float]]:
    """Per class: clips, mean (and sd) file duration, speech duration, leading / trailing silence and
    speech level (dBFS), measured from the stored audio of ``split`` (all splits when None)."""
    import datasets
    import soundfile as sf

    rows = {e: [] for e in dataset_dict[next(iter(dataset_dict))].features["emotion"].names}
    for name in [split] if split else list(dataset_dict):
        part = dataset_dict[name].cast_column("audio", datasets.Audio(decode=False))
        names = part.features["emotion"].names
        for audio, emotion in zip(part["audio"], part["emotion"]):
            wave, sr = sf.read(io.BytesIO(audio["bytes"]), dtype="float32")
            start, end = _speech_span(wave, sr)
            rows[names[emotion]].append(
                (
                    wave.size / sr,
                    (end - start) / sr,
                    start / sr,
                    (wave.size - end) / sr,
                    speech_level_db(wave[start:end], sr),
                )
            )
    report = {}
    for emotion, values in rows.items():
        v = np.asarray(values, dtype=float).reshape(-1, 5) if values else np.full((1, 5), np.nan)
        mean, sd = v.mean(axis=0), v.std(axis=0)
        report[emotion] = {
            "clips": len(values),
            "duration_s": mean[0],
            "duration_sd_s": sd[0],
            "speech_s": mean[1],
            "leading_silence_s": mean[2],
            "trailing_silence_s": mean[3],
            "level_dbfs": mean[4],
            "level_sd_db": sd[4],
        }
    return report


def format_report(dataset_dict) -> str:
    """The version-2 report (printed by the builder, written into the card): voices, variants,
    accents and sentences per split, overlaps (all 0, or the build fails), and per-class duration,
    silences and level of the training split (or the first one)."""
    leak = check_unseen(dataset_dict)
    splits = list(dataset_dict)
    first = "train" if "train" in dataset_dict else splits[0]
    lines = ["| per split | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    for what in ("voices", "variants", "accents", "sentences"):
        lines.append(
            f"| distinct {what} | " + " | ".join(str(leak["counts"][s][what]) for s in splits) + " |"
        )
    lines += ["", "| shared between splits | count |", "|---|---|"]
    lines += [f"| {name} | {len(shared)} |" for name, shared in leak["overlaps"].items()]
    lines += [
        "",
        f"Per class, {first} split (the silences and level do not follow the class; the speech duration,"
        " and so the file's, does through the speaking rate of the emotion model):",
        "",
        "| class | clips | file s (sd) | speech s | leading s | trailing s | level dBFS (sd) |",
        "|---|---|---|---|---|---|---|",
    ]
    for emotion, r in acoustic_report(dataset_dict, first).items():
        lines.append(
            f"| {emotion} | {r['clips']} | {r['duration_s']:.2f} ({r['duration_sd_s']:.2f}) | {r['speech_s']:.2f} "
            f"| {r['leading_silence_s']:.2f} | {r['trailing_silence_s']:.2f} | {r['level_dbfs']:.1f} ({r['level_sd_db']:.1f}) |"
        )
    return "\n".join(lines)


__all__ = ["acoustic_report", "check_unseen", "format_report", "leakage_report"]
