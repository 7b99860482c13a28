"""Helpers for checkpoints that carry their own code (``trust_remote_code=True``)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def add_auto_map_aliases(save_directory: str | os.PathLike, source: str, aliases: tuple[str, ...]) -> None:
    """Point more Auto classes at the class saved for ``source`` in ``config.json``'s ``auto_map``.

    ``register_for_auto_class`` records one Auto class per model class; serhub's classifiers load
    through both ``AutoModel`` and ``AutoModelForAudioClassification``.
    """
    path = Path(save_directory) / "config.json"
    config = json.loads(path.read_text())
    auto_map = config.get("auto_map") or {}
    if source not in auto_map:
        return
    for alias in aliases:
        auto_map.setdefault(alias, auto_map[source])
    config["auto_map"] = auto_map
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


__all__ = ["add_auto_map_aliases"]
