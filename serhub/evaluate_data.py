"""What ``serhub evaluate`` scores (:mod:`serhub.evaluate`): the label map and the labels scored, the
split's labelled rows (a folder, an embedded corpus or a Hub id) and the model's probabilities over
the scored labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

EMBEDDED = ("synthetic_emotions",)  # the labelled corpus serhub builds offline (recipes train on it)


# ----------------------------------------------------------------------------- labels


def parse_label_map(text: str | None) -> dict[str, str]:
    """``"exc=happy,frustrated=angry"``, or a file: a JSON object, or one ``a=b`` per line (# comments)."""
    if not text:
        return {}
    path = Path(text).expanduser()
    if path.is_file():
        content = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            mapping = json.loads(content)
            if not isinstance(mapping, dict):
                raise ValueError(f"--label_map {path}: expected a JSON object {{dataset label: model label}}")
            return {str(k).strip(): str(v).strip() for k, v in mapping.items()}
        pairs = [line.split("#", 1)[0].strip() for line in content.splitlines()]
    else:
        pairs = [p.strip() for p in text.split(",")]
    mapping = {}
    for pair in filter(None, pairs):
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise ValueError(
                f"--label_map: {pair!r} is not 'dataset_label=model_label'; write e.g. "
                "--label_map exc=happy,frustrated=angry (or a file with one pair per line)"
            )
        mapping[source.strip()] = target.strip()
    return mapping


def split_list(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def model_labels(classifier) -> list[str]:
    config = classifier.model.config
    return [config.id2label[i] for i in range(len(config.id2label))]


def scored_labels(model: list[str], candidates: list[str] | None, references: set[str]) -> list[str]:
    """The labels scored: ``candidates`` (checked against the model's) or all the model's; every
    reference must be one of them. ``ValueError`` listing what the model can produce."""
    if candidates:
        unknown = [c for c in candidates if c not in model]
        if unknown:
            raise ValueError(
                f"--candidate_labels {unknown} are not labels of the model; it can produce {model}. "
                "Choose candidates among those."
            )
    labels = list(dict.fromkeys(candidates)) if candidates else list(model)
    missing = sorted(references - set(labels))
    if missing:
        what = "the candidate labels" if candidates else "the model"
        raise ValueError(
            f"the dataset has labels that {what} cannot produce: {missing}; it can produce {labels}. "
            f"Map them with --label_map (e.g. --label_map {missing[0]}={labels[0]}), "
            + ("add them to --candidate_labels, " if candidates else "")
            + "or evaluate on a dataset without them."
        )
    return labels


# ----------------------------------------------------------------------------- data and inference


def dataset_location(dataset: str) -> str:
    """``dataset`` as loaded: serhub's embedded corpora (built once offline) by their folder."""
    from serhub.recipes.data import embedded_dataset_path

    if dataset in EMBEDDED and not Path(dataset).is_dir():
        return str(embedded_dataset_path(dataset))
    return dataset


def open_split(dataset: str, split: str):
    """Every row of ``split`` of ``dataset`` (a folder, an embedded corpus' name or a Hub id)."""
    from serhub.recipes.data import load_dataset_dict, require_splits

    dataset_dict = load_dataset_dict(dataset_location(dataset), option="--dataset")
    require_splits(dataset_dict, [split])
    return dataset_dict[split]


def load_split(dataset: str, split: str, label_column: str, max_samples: int | None):
    """The split and its reference label names (rows without a label left out)."""
    return labelled_rows(open_split(dataset, split), dataset, split, label_column, max_samples)


def labelled_rows(ds, dataset: str, split: str, label_column: str, max_samples: int | None):
    """``(rows, reference label names, unlabelled count)``: the first ``max_samples`` labelled rows."""
    if label_column not in ds.column_names:
        raise ValueError(
            f"split {split!r} has no {label_column!r} column; its columns are {ds.column_names}. "
            "Name the label column with --label_column."
        )
    names = getattr(ds.features[label_column], "names", None)
    values = ds[label_column]
    keep = [i for i, v in enumerate(values) if v is not None and v != -1 and v != ""]
    unlabelled = len(values) - len(keep)
    if max_samples is not None:
        keep = keep[:max_samples]
    if not keep:
        raise ValueError(f"split {split!r} of {dataset} has no labelled row to evaluate")
    references = [names[values[i]] if names else str(values[i]) for i in keep]
    return ds.select(keep), references, unlabelled


def predict_probabilities(classifier, ds, labels: list[str], batch_size: int, progress: bool = True):
    """(N, len(labels)) probabilities, renormalised over ``labels`` (the model's softmax restricted
    to them, which is the softmax of their logits alone)."""
    import datasets
    from tqdm.auto import tqdm

    rate = getattr(classifier.feature_extractor, "sampling_rate", 16000)
    ds = ds.cast_column("audio", datasets.Audio(sampling_rate=rate))
    rows = []
    for start in tqdm(range(0, len(ds), batch_size), desc="evaluating", unit="batch", disable=not progress):
        clips = [a["array"] for a in ds[start : start + batch_size]["audio"]]
        for scores in classifier(clips, top_k=None, batch_size=batch_size):
            by_label = {s["label"]: float(s["score"]) for s in scores}
            rows.append([by_label[label] for label in labels])
    probs = np.asarray(rows, dtype=np.float64)
    return probs / np.clip(probs.sum(1, keepdims=True), 1e-12, None)


def enrolment_plan(
    speakers: list[str], references: list[str], per_speaker: int, label: str | None = "neutral"
) -> dict[str, tuple[list[int], list[int]]]:
    """Per speaker, ``(the rows whose audio enrols the speaker, the rows scored)``: the speaker's first
    ``per_speaker`` rows labelled ``label`` (a neutral recording, as a user would enrol), topped up
    with their first other rows when they have fewer; every other row of theirs is scored.
    ``ValueError`` when a speaker would have nothing left to score."""
    if per_speaker < 1:
        raise ValueError(f"enrolment needs at least one reference clip per speaker, found {per_speaker}")
    rows_of: dict[str, list[int]] = {}
    for i, speaker in enumerate(speakers):
        rows_of.setdefault(str(speaker), []).append(i)
    plan = {}
    for speaker, rows in rows_of.items():
        if len(rows) <= per_speaker:
            raise ValueError(
                f"speaker {speaker!r} has {len(rows)} clip(s); enrolling {per_speaker} leaves none to score. "
                f"Give fewer reference clips per speaker (at most {len(rows) - 1} here)."
            )
        preferred = [i for i in rows if label is not None and references[i] == label]
        enrol = (preferred + [i for i in rows if i not in preferred])[:per_speaker]
        plan[speaker] = (sorted(enrol), [i for i in rows if i not in enrol])
    return plan


SELF_REFERENCE_CLIPS = 32  # at most this many of a speaker's own clips make their self-reference


def spread(n: int, k: int) -> np.ndarray:
    """Up to ``k`` of the indices 0..n-1, evenly spread from the first to the last."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int))


def self_enrolment_plan(
    speakers: list[str], max_reference: int = SELF_REFERENCE_CLIPS
) -> dict[str, tuple[list[int], list[int]]]:
    """Per speaker, ``(the rows whose audio enrols the speaker, the rows scored)`` when each speaker is
    their own reference: the audio of up to ``max_reference`` of their clips, evenly spread (no label
    is read), enrols them, and every clip of theirs is scored (the transductive protocol of
    speaker-normalised SER; per recording in use). ``ValueError`` for a speaker with a single clip,
    which would be read relative to itself."""
    if max_reference < 2:
        raise ValueError(f"a self-reference needs at least 2 clips per speaker, found {max_reference}")
    rows_of: dict[str, list[int]] = {}
    for i, speaker in enumerate(speakers):
        rows_of.setdefault(str(speaker), []).append(i)
    alone = sorted(speaker for speaker, rows in rows_of.items() if len(rows) < 2)
    if alone:
        raise ValueError(
            f"{len(alone)} speaker(s) have a single clip ({', '.join(map(repr, alone[:5]))}"
            f"{', ...' if len(alone) > 5 else ''}): a clip is not a reference for itself. Enrol them on "
            "other recordings (--enroll_per_speaker K) or leave those speakers out."
        )
    plan = {}
    for speaker, rows in rows_of.items():
        plan[speaker] = ([rows[k] for k in spread(len(rows), max_reference)], list(rows))
    return plan


def predict_enrolled(classifier, ds, labels: list[str], plan: dict, batch_size: int, progress: bool = True):
    """(N, len(labels)) probabilities of the plan's scored rows (the enrolment rows stay 0), each
    speaker's clips scored after enrolling the speaker on their reference clips (the model's
    ``enroll_speaker``; ``forget_speaker`` afterwards, also on an error)."""
    import datasets
    from tqdm.auto import tqdm

    model = classifier.model
    if not hasattr(model, "enroll_speaker"):
        raise ValueError(
            f"{type(model).__name__} cannot enrol a speaker: enrolment is for serhub's speech classifier "
            "(trained with --speaker_norm or --speaker_prosody) and audio-LLMs (trained with --speaker_prosody)"
        )
    rate = getattr(classifier.feature_extractor, "sampling_rate", 16000)
    ds = ds.cast_column("audio", datasets.Audio(sampling_rate=rate))
    probs = np.zeros((len(ds), len(labels)), dtype=np.float64)
    try:
        for enrol, scored in tqdm(
            plan.values(), desc="evaluating (enrolled)", unit="speaker", disable=not progress
        ):
            clips = [ds[i]["audio"]["array"] for i in enrol]
            inputs = classifier.feature_extractor(
                clips, sampling_rate=rate, return_tensors="pt", padding=True, return_attention_mask=True
            )
            model.enroll_speaker(**{k: v.to(model.device) for k, v in inputs.items()})
            probs[scored] = predict_probabilities(
                classifier, ds.select(scored), labels, batch_size, progress=False
            )
    finally:
        model.forget_speaker()
    return probs


__all__ = [
    "SELF_REFERENCE_CLIPS",
    "enrolment_plan",
    "self_enrolment_plan",
    "spread",
    "predict_enrolled",
    "dataset_location",
    "labelled_rows",
    "load_split",
    "model_labels",
    "open_split",
    "parse_label_map",
    "predict_probabilities",
    "scored_labels",
    "split_list",
]
