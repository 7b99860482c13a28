"""What a corpus builder declares: the shared label sets, the corpus spec and the utterance record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The shared label sets are nested prefixes of one list: "4" is the classic IEMOCAP set, "6" is
# the set CREMA-D and EmoSPeech define (Ekman's basic emotions without surprise, plus neutral),
# "8" is MSP-Podcast's challenge set.


SHARED_EMOTIONS = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise", "contempt")


LABEL_SETS = {"4": SHARED_EMOTIONS[:4], "6": SHARED_EMOTIONS[:6], "8": SHARED_EMOTIONS}


LABEL_SET_CHOICES = ("native", *LABEL_SETS)


SPLIT_ORDER = ("train", "validation", "test", "test1", "test2", "test3")


UNKNOWN_SPEAKER = "unknown-"


def unknown_speaker(utterance_id: str) -> str:
    """The speaker id of an utterance whose speaker the corpus does not name: one per utterance, so
    that it never counts as a leak, and recognisable so that the build can warn about it."""
    return f"{UNKNOWN_SPEAKER}{utterance_id}"


@dataclass
class Utterance:
    utterance_id: str
    split: str | None
    audio: Path
    label: str | None  # the label code as written in the corpus' files; None = not annotated
    speaker_id: str
    source: str  # where it is listed, for messages: "Labels/labels_consensus.csv line 7"
    transcript: str = ""
    gender: str | None = None
    arousal: float | None = None
    valence: float | None = None
    dominance: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CorpusSpec:
    """What the shared pipeline and the dataset card need to know about a corpus."""

    name: str
    module: str  # datasets_scripts.<module>
    labels: Mapping[str, str]  # label code in the files -> class name, in the corpus' own order
    to_shared: Mapping[str, str]  # class name -> SHARED_EMOTIONS name; absent: no counterpart
    language: str
    optional_columns: tuple[str, ...]  # of common.ser_features, besides "language"
    license: str  # Hub licence id
    license_note: str
    citation: str
    about: str  # the corpus and how the builder reads it (markdown)
    layout_hint: str  # what --raw_dir should contain, for error messages and --help
    speaker_splits: str = "ours"  # "ours" (checked, a leak is a bug), "official" (leaks noted), "none"
    excluded_by_default: tuple[str, ...] = ()
    # corpus-specific columns: a Value dtype ("string", "int32") or a tuple of class names (ClassLabel)
    extra_features: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self):
        unknown = set(self.to_shared.values()) - set(SHARED_EMOTIONS)
        if unknown or set(self.to_shared) - set(self.labels.values()):
            raise ValueError(f"{self.name}: bad to_shared mapping {dict(self.to_shared)}")
