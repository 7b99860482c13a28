"""Prosody relative to the speaker (``--speaker_prosody``), for the recipes whose models read it (the
speech classifier's head, the audio-LLMs' prosody label scores): ten measured numbers per clip
(``modeling.prosody.measure_prosody``) beside each speaker's reference, the mean over their first
``DEFAULT_ENROLMENT`` clips, neutral ones first, as a user enrols a speaker."""

from __future__ import annotations

import numpy as np

from serhub.heldout import DEFAULT_ENROLMENT

from .logs import get_logger

logger = get_logger("speaker_prosody")

SPEAKER_PROSODY_NOTE = "prosody numbers relative to the speaker's enrolled clips (--speaker_prosody)"


def check_speaker_data(option: str, data_args, columns: list[str], heldout_enrols: bool = True) -> None:
    """Before any work: the data names each clip's speaker, and (``heldout_enrols``: the option's
    model enrols each voice) a held-out evaluation keeps clips to score once each voice has enrolled."""
    if heldout_enrols and data_args.heldout_eval and data_args.heldout_clips_per_voice <= DEFAULT_ENROLMENT:
        raise ValueError(
            f"{option} with --heldout_eval: {DEFAULT_ENROLMENT} clips of each held-out voice enrol it and the "
            f"rest are scored, so --heldout_clips_per_voice must be above {DEFAULT_ENROLMENT} (found "
            f"{data_args.heldout_clips_per_voice})"
        )
    if data_args.speaker_column not in columns:
        raise ValueError(
            f"{option} needs each clip's speaker: the data has no {data_args.speaker_column!r} column "
            f"(columns: {columns}); name it with --speaker_column"
        )


def reference_rows(speakers, labels, neutral: str | None, k: int) -> np.ndarray:
    """Which rows give their speaker's reference: each speaker's first ``k`` clips with the ``neutral``
    ones first (all of a speaker's clips when they have fewer), as a user enrols a speaker."""
    speakers, rows = np.asarray(speakers), np.zeros(len(speakers), dtype=bool)
    for s in np.unique(speakers) if k else ():
        own = np.flatnonzero(speakers == s)
        rows[sorted(own, key=lambda i: (labels[i] != neutral, i))[:k]] = True
    return rows


def own_reference_rows(speakers) -> np.ndarray:
    """Which rows give their speaker's reference with ``--speaker_reference own_clips``: up to
    ``SELF_REFERENCE_CLIPS`` of each speaker's clips, evenly spread, no label read (what ``--enroll_self``
    gives at inference: ``serhub.evaluate_data.self_enrolment_plan``)."""
    from serhub.evaluate_data import SELF_REFERENCE_CLIPS, spread

    speakers, rows = np.asarray(speakers), np.zeros(len(speakers), dtype=bool)
    for s in np.unique(speakers):
        own = np.flatnonzero(speakers == s)
        rows[own[spread(len(own), SELF_REFERENCE_CLIPS)]] = True
    return rows


def speaker_prosody_arrays(
    sources: dict,
    speaker_column: str,
    labels: list[str],
    train_split: str,
    speaker_reference: str = "enrolled",
) -> tuple[dict, dict, tuple]:
    """Each split's measured prosody numbers (clips, 10; NaN where too few frames were voiced) and
    each clip's speaker reference (clips, 10): the speaker's mean over their first
    ``DEFAULT_ENROLMENT`` clips of the split, neutral ones first (what enrolment gives at inference;
    validation and test speakers with their own, transductively). ``sources[split]``: the split's
    audio, speakers and "labels" (class ids into ``labels``).

    Returns ``(measured, references, statistics)``: the statistics are the training split's, for the
    model's prosody module (``set_statistics``): the missing-number fill, the relative numbers' mean
    and spread, the training voices' average reference. ``speaker_reference`` "own_clips": each speaker's
    reference is the mean over their own clips instead (``own_reference_rows``)."""
    from serhub.modeling.prosody import measure_prosody
    from tqdm.auto import tqdm

    neutral = "neutral" if "neutral" in labels else None
    measured, enrolled = {}, {}
    for split, source in sources.items():
        measured[split] = np.stack(
            [
                measure_prosody(a["array"], a["sampling_rate"])
                for a in tqdm(source["audio"], desc=f"{split}: prosody")
            ]
        )
        speakers = [str(x) for x in source[speaker_column]]
        named = [labels[i] for i in source["labels"]]
        rows = (
            own_reference_rows(speakers)
            if speaker_reference == "own_clips"
            else reference_rows(speakers, named, neutral, DEFAULT_ENROLMENT)
        )
        enrolled[split] = (rows, speakers)
    fill = np.nanmedian(measured[train_split], axis=0)
    fill = np.where(np.isnan(fill), 0.0, fill)
    references, train_relative, train_references = {}, None, []
    for split, (enrol, speakers) in enrolled.items():
        values = np.where(np.isnan(measured[split]), fill, measured[split])
        reference = np.zeros_like(values)
        speakers = np.asarray(speakers)
        for speaker in np.unique(speakers):
            own = speakers == speaker
            reference[own] = values[own & enrol].mean(axis=0)
            if split == train_split:
                train_references.append(reference[own][0])
        if split == train_split:
            train_relative = values - reference
        references[split] = reference
    statistics = (
        fill,
        train_relative.mean(axis=0),
        train_relative.std(axis=0),
        np.mean(train_references, axis=0),
    )
    if speaker_reference == "own_clips":
        logger.info(
            "speaker prosody: ten numbers per clip relative to the mean over each speaker's own clips"
        )
    else:
        logger.info(
            "speaker prosody: ten numbers per clip relative to each speaker's %d enrolled clips (%s first)",
            DEFAULT_ENROLMENT,
            neutral or "the first",
        )
    return measured, references, statistics


def speaker_prosody_columns(
    cached: dict,
    sources: dict,
    speaker_column: str,
    labels: list[str],
    train_split: str,
    speaker_reference: str = "enrolled",
) -> tuple[dict, tuple]:
    """Every cached split with "prosody_values" (each clip's ten measured numbers) and
    "prosody_reference" (its speaker's reference: ``speaker_prosody_arrays``). A cached split k times
    as long as its source (the clean clips and k - 1 augmented copies, in order) repeats the clean
    clips' numbers. Returns the splits and the training split's statistics."""
    measured, references, statistics = speaker_prosody_arrays(
        {split: sources[split] for split in cached}, speaker_column, labels, train_split, speaker_reference
    )
    out = {}
    for split, ds in cached.items():
        values = measured[split]
        copies, left = divmod(len(ds), len(values))
        if left or not copies:
            raise ValueError(
                f"split {split!r}: {len(ds)} cached rows for {len(values)} clips; the prosody numbers need "
                "one row per clip (or whole augmented copies of the split)"
            )
        out[split] = (
            ds.add_column("prosody_values", np.tile(values, (copies, 1)).astype(np.float32).tolist())
            .add_column(
                "prosody_reference", np.tile(references[split], (copies, 1)).astype(np.float32).tolist()
            )
            .with_format("numpy")
        )
    return out, statistics


def speaker_prosody_row(model_args) -> dict:
    """The model card's row for ``--speaker_prosody`` (none when off)."""
    if not getattr(model_args, "speaker_prosody", False):
        return {}
    return {
        "speaker prosody": "ten measured prosody numbers per clip (swift-f0 pitch, level, rhythm) relative to the "
        f"speaker's reference (training: each voice's first {DEFAULT_ENROLMENT} clips, neutral first; use: "
        "enroll_speaker), its label scores added to the LLM's"
    }


def measuring_feature_extractor(feature_extractor):
    """A copy of a ``SpeechEmotionFeatureExtractor`` that also returns each clip's ``prosody_values``
    (what a saved ``speaker_prosody`` model's pipeline needs)."""
    settings = {**feature_extractor.to_dict(), "return_prosody": True}
    for key in ("feature_extractor_type", "processor_class"):
        settings.pop(key, None)
    return type(feature_extractor)(**settings)


__all__ = [
    "SPEAKER_PROSODY_NOTE",
    "check_speaker_data",
    "measuring_feature_extractor",
    "reference_rows",
    "own_reference_rows",
    "speaker_prosody_arrays",
    "speaker_prosody_columns",
    "speaker_prosody_row",
]
