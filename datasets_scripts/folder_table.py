"""The label table of ``python -m serhub.datasets_scripts.folder``: CSV, TSV or JSONL, and which of its
columns hold the file, the label, the speaker, ... (named by flags, else guessed from the header)."""

from __future__ import annotations

import json
from pathlib import Path

from . import corpus_tools as ct

GUESSES = {
    "file": ("file", "file_name", "filename", "path", "filepath", "audio", "audio_path", "audio_file", "wav"),
    "label": ("emotion", "label", "emotion_label", "class", "category"),
    "speaker": ("speaker_id", "speaker", "spk", "spk_id", "actor", "participant"),
    "transcript": ("transcript", "transcription", "text", "sentence"),
    "gender": ("gender", "sex"),
    "arousal": ("arousal", "activation"),
    "valence": ("valence",),
    "dominance": ("dominance",),
    "split": ("split", "partition"),
}
# --column_map may also name a role by the common schema's column it fills
ROLE_ALIASES = {"audio": "file", "emotion": "label", "speaker_id": "speaker"}


def read_table(path: Path, log: ct.ProblemLog) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """``(columns, [(line, row)])`` of a CSV, TSV (by suffix, or a tab in the header) or JSONL file."""
    import csv
    import io

    text = ct.decode_text(path.read_bytes())
    if path.suffix.lower() in (".jsonl", ".json"):
        rows, columns = [], {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                log.add(ct.MALFORMED, log.where(path, number), f"not a JSON object ({err.msg})")
                continue
            if not isinstance(record, dict):
                log.add(ct.MALFORMED, log.where(path, number), "each line must be one JSON object")
                continue
            row = {str(k).strip(): "" if v is None else str(v).strip() for k, v in record.items()}
            columns.update(dict.fromkeys(row))
            rows.append((number, row))
        return list(columns), rows
    first = text.split("\n", 1)[0]
    tabbed = path.suffix.lower() == ".tsv" or ("\t" in first and "," not in first)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if tabbed else ",")
    columns = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    rows = [(reader.line_num, {k: (v or "").strip() for k, v in r.items() if k}) for r in reader]
    return columns, rows


def choose_columns(columns: list[str], named: dict[str, str | None], where: str) -> dict[str, str | None]:
    """``{role: column or None}``: the columns named by flags (each must exist), else the first guess
    present; file and label are required. ``ValueError`` naming the columns found and the flag."""
    lower = {c.lower(): c for c in columns}
    chosen: dict[str, str | None] = {}
    for role, guesses in GUESSES.items():
        flag = named.get(role)
        if flag:
            if flag not in columns:
                raise ValueError(
                    f"{where}: --{role}_column {flag!r} is not a column; the columns are {columns}. "
                    f"Name one of them with --{role}_column."
                )
            chosen[role] = flag
        else:
            chosen[role] = next((lower[g] for g in guesses if g in lower), None)
    for role in ("file", "label"):
        if chosen[role] is None:
            raise ValueError(
                f"{where}: no {role} column; expected one named {' / '.join(GUESSES[role])} (any case), "
                f"found {columns or 'no header'}. Name it with --{role}_column."
            )
    return chosen


def parse_column_map(text: str | None) -> dict[str, str]:
    """``"emotion=label,speaker=client_id"`` -> ``{"label": "label", "speaker": "client_id"}``: roles as
    the ``--<role>_column`` flags name them (or :data:`ROLE_ALIASES`). ``ValueError`` on an unknown role."""
    named: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        role, sep, column = (x.strip() for x in item.partition("="))
        role = ROLE_ALIASES.get(role, role)
        if not sep or not column or role not in GUESSES:
            roles = ", ".join([*GUESSES, *(f"{a} (= {r})" for a, r in ROLE_ALIASES.items())])
            raise ValueError(
                f"--column_map: {item!r} is not ROLE=COLUMN with a known role; the roles are {roles}"
            )
        if named.get(role, column) != column:
            raise ValueError(f"--column_map names two columns for {role}: {named[role]!r} and {column!r}")
        named[role] = column
    return named


def named_columns(flags: dict[str, str | None], column_map: str | None) -> dict[str, str | None]:
    """``{role: column}`` from the ``--<role>_column`` flags and ``--column_map`` (``ValueError`` when
    they disagree)."""
    columns = dict(flags)
    for role, column in parse_column_map(column_map).items():
        if columns.get(role) not in (None, column):
            raise ValueError(f"--{role}_column {columns[role]!r} and --column_map {role}={column} disagree")
        columns[role] = column
    return columns


__all__ = ["GUESSES", "ROLE_ALIASES", "choose_columns", "named_columns", "parse_column_map", "read_table"]
