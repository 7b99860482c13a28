"""How ``folder`` (and ``from_dataset``) split your clips: the splits the table gives are kept; else
whole speakers go to train, validation and test (``corpus_builder.assign_speaker_splits``); without
speaker ids the build is refused, unless ``--allow_speaker_overlap`` asks for class-stratified splits
of the clips (the card then says the scores are speaker-dependent)."""

from __future__ import annotations

from . import corpus_tools as ct
from .corpus_builder import assign_speaker_splits

GIVEN_SPLITS = "splits as given in the table's split column"
TOO_FEW_SPEAKERS = "too few speakers"
NO_SPEAKERS_HINT = (
    "Splits must hold whole speakers: clips of one voice in train and test flatter every score, and the "
    "model learns the voice instead of the emotion. Add a speaker column to the table (or name it with "
    "--speaker_column), or pass --allow_speaker_overlap to split the clips without regard to speakers "
    "(the dataset card then says the scores are speaker-dependent)."
)


def assign_splits(utterances, has_speakers, allow_overlap, options, log, given=GIVEN_SPLITS) -> str:
    """Give every utterance its split; returns the spec's ``speaker_splits`` ("ours", "official", "none").
    Splits the utterances already have are kept (``given`` says where from, for the card)."""
    if any(u.split for u in utterances):
        log.note(given)
        return "official"
    if has_speakers:
        try:
            assign_speaker_splits(
                utterances, log, options["validation_fraction"], options["test_fraction"], options["seed"]
            )
        except ValueError as err:
            speakers = sorted({u.speaker_id for u in utterances})
            raise ct.CorpusError(
                log.corpus,
                log.raw_dir,
                [ct.Problem(TOO_FEW_SPEAKERS, "speaker column", f"found {', '.join(speakers[:10])}; {err}")],
                "Train, validation and test need one speaker each at least (more give fairer scores); "
                "record more speakers, or pass --validation_fraction / --test_fraction 0.",
            ) from None
        return "ours"
    if not allow_overlap:
        raise ct.CorpusError(
            log.corpus,
            log.raw_dir,
            [ct.Problem(TOO_FEW_SPEAKERS, "speakers", "the clips have no speaker ids")],
            NO_SPEAKERS_HINT,
        )
    _stratified_splits(utterances, options)
    log.note(
        "no speaker ids: splits are random clips stratified by label (--allow_speaker_overlap), so the same "
        "voices are in train and test and the scores are speaker-dependent",
        warn=True,
    )
    return "none"


def _stratified_splits(utterances, options: dict) -> None:
    """Class-stratified random splits of the clips (no speaker ids to hold out)."""
    from .splits import stratified_holdout

    labels = [u.label or "" for u in utterances]
    everything = list(range(len(labels)))
    test_fraction, validation_fraction = options["test_fraction"], options["validation_fraction"]
    rest, test = (
        stratified_holdout(labels, test_fraction, seed=options["seed"]) if test_fraction else (everything, [])
    )
    validation = []
    if validation_fraction:
        share = validation_fraction / (1.0 - test_fraction)
        _, held = stratified_holdout([labels[i] for i in rest], share, seed=options["seed"])
        validation = [rest[i] for i in held]
    for u in utterances:
        u.split = "train"
    for split, rows in (("test", test), ("validation", validation)):
        for i in rows:
            utterances[i].split = split


__all__ = ["GIVEN_SPLITS", "NO_SPEAKERS_HINT", "TOO_FEW_SPEAKERS", "assign_splits"]
