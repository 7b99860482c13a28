"""Helpers for checkpoints that carry their own code (``trust_remote_code=True``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .file_utils import atomic_write


def add_auto_map_entries(save_directory: str | os.PathLike, entries: dict[str, str]) -> None:
    """Add ``{Auto class: "module.Class"}`` entries to ``config.json``'s ``auto_map`` (existing kept).

    ``register_for_auto_class`` records one Auto class per model class; serhub's checkpoints load
    through several (e.g. ``AutoModel`` and ``AutoModelForAudioClassification``).
    """
    path = Path(save_directory) / "config.json"
    config = json.loads(path.read_text())
    auto_map = config.get("auto_map") or {}
    for auto_class, target in entries.items():
        auto_map.setdefault(auto_class, target)
    config["auto_map"] = auto_map
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n"))


__all__ = ["add_auto_map_entries"]
