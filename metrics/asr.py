"""Word error rate without the Hub (``evaluate.load("wer")`` needs it): Levenshtein over words."""

from __future__ import annotations

import re
from collections.abc import Sequence

_PUNCT = re.compile(r"[^\w\s']")


def normalize_text(text: str) -> str:
    """Lower-case, hyphens to spaces, punctuation dropped, whitespace collapsed (Whisper-style basic)."""
    text = text.lower().replace("-", " ")
    return " ".join(_PUNCT.sub(" ", text).split())


def _edit_distance(hyp: list[str], ref: list[str]) -> int:
    previous = list(range(len(ref) + 1))
    for i, h in enumerate(hyp, 1):
        current = [i]
        for j, r in enumerate(ref, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (h != r)))
        previous = current
    return previous[-1]


def word_error_rate(predictions: Sequence[str], references: Sequence[str], normalize: bool = True) -> float:
    """Corpus WER: total word edits / total reference words."""
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions and references must have the same length, got {len(predictions)} and {len(references)}"
        )
    prep = normalize_text if normalize else (lambda s: s)
    edits = words = 0
    for hyp, ref in zip(predictions, references):
        ref_words = prep(ref).split()
        edits += _edit_distance(prep(hyp).split(), ref_words)
        words += len(ref_words)
    if words == 0:
        raise ValueError("the references contain no words")
    return edits / words


__all__ = ["normalize_text", "word_error_rate"]
