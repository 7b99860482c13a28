"""Problems a corpus build finds (missing files, unreadable audio, unknown labels, ...): recorded
all at once in a ProblemLog and raised together as one CorpusError, or skipped with --skip_bad."""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# The shared label sets are nested prefixes of one list: "4" is the classic IEMOCAP set, "6" is
# the set CREMA-D and EmoSPeech define (Ekman's basic emotions without surprise, plus neutral),
# "8" is MSP-Podcast's challenge set.


# Kinds of problem. WRONG_LAYOUT is fatal: --skip_bad cannot build around a missing label file.
WRONG_LAYOUT = "wrong --raw_dir or file format"


MISSING_FILE = "missing file"


UNREADABLE_AUDIO = "unreadable or truncated audio"


UNKNOWN_LABEL = "unknown label"


DUPLICATE_ID = "duplicate utterance id"


MALFORMED = "malformed entry"


OUTSIDE_CORPUS = "file outside the corpus folder"


SKIP_HINT = (
    "Fix these files (each line says what was expected), or pass --skip_bad (build(..., skip_bad=True)) "
    "to leave the affected utterances out; the dataset card then lists them."
)


@dataclass(frozen=True)
class Problem:
    kind: str
    where: str  # a file relative to --raw_dir, with a line number where it helps
    detail: str
    utterance_ids: tuple[str, ...] = ()  # the utterances it makes unusable (left out with skip_bad)

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


def format_problems(problems: Iterable[Problem], indent: str = "  ") -> str:
    """Problems grouped by kind, one ``- file: detail`` line each."""
    by_kind: dict[str, list[Problem]] = defaultdict(list)
    for problem in problems:
        by_kind[problem.kind].append(problem)
    lines = []
    for kind, items in by_kind.items():
        lines.append(f"{indent}{kind} ({len(items)}):")
        lines.extend(f"{indent}  - {p}" for p in items)
    return "\n".join(lines)


class CorpusError(ValueError):
    """Every problem found in a raw corpus folder, raised at once; nothing was written."""

    def __init__(self, corpus: str, raw_dir: str | Path, problems: Sequence[Problem], fix: str):
        self.problems = list(problems)
        super().__init__(
            f"{corpus}: {len(self.problems)} problem(s) in {raw_dir}; nothing was written.\n"
            f"{format_problems(self.problems)}\n{fix}"
        )


class ProblemLog:
    """Collects what a build finds: problems (with files), exclusions by design, and notes."""

    def __init__(self, corpus: str, raw_dir: Path):
        self.corpus = corpus
        self.raw_dir = raw_dir
        self.problems: list[Problem] = []
        self.excluded: Counter[str] = Counter()
        self.notes: list[str] = []

    def where(self, path: str | Path, line: int | None = None) -> str:
        """``path`` relative to the raw folder (as users see it in their download), with the line."""
        path = Path(path)
        try:
            name = path.relative_to(self.raw_dir).as_posix()
        except ValueError:
            name = str(path)
        return f"{name} line {line}" if line is not None else name

    def add(self, kind: str, where: str, detail: str, utterance_ids: str | Iterable[str] = ()) -> None:
        ids = (utterance_ids,) if isinstance(utterance_ids, str) else tuple(utterance_ids)
        self.problems.append(Problem(kind, where, detail, ids))

    def exclude(self, reason: str, count: int = 1) -> None:
        """Leave utterances out by design (not a problem), counted for the card."""
        self.excluded[reason] += count

    def note(self, text: str, warn: bool = False) -> None:
        self.notes.append(text)
        if warn:
            warnings.warn(f"{self.corpus}: {text}", UserWarning, stacklevel=3)

    def bad_ids(self) -> set[str]:
        return {uid for problem in self.problems for uid in problem.utterance_ids}

    def raise_if_needed(self, skip_bad: bool) -> None:
        fatal = any(p.kind == WRONG_LAYOUT for p in self.problems)
        if fatal or (self.problems and not skip_bad):
            fix = (
                "The files above are not in the format the distributor ships; check --raw_dir."
                if fatal
                else SKIP_HINT
            )
            raise CorpusError(self.corpus, self.raw_dir, self.problems, fix)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
