"""Checkpoints that carry their own code: the ``auto_map`` entries serhub writes, and the one check
that decides whether a model someone *else* named may be loaded at all.

transformers runs a folder's own Python files when it is loaded with ``trust_remote_code=True`` and
its ``config.json`` has an ``auto_map``. serhub never does that for a model a user, visitor, file
or config supplied: :func:`check_model` reads ``config.json`` alone (no code), accepts serhub's own
model types (:data:`SERHUB_MODEL_TYPES`) and transformers' built-in ones, and the loaders then pass
:func:`trust_remote_code_for` — ``False`` wherever serhub's classes are registered, so the classes
installed with serhub run, never the files in the folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .file_utils import atomic_write, is_local_reference

# Every model type serhub registers (modeling/__init__.py); the only custom code serhub ever trusts.
SERHUB_MODEL_TYPES = frozenset(
    {
        "ser_audio_llm",
        "ser_ensemble",
        "ser_graph_fusion",
        "ser_qwen2_audio",
        "ser_speech_emotion",
        "ser_text_llm",
    }
)


class UntrustedModelError(ValueError):
    """A model whose code would come from the model itself (not a serhub or transformers type)."""


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


def read_model_config(model: str | os.PathLike) -> dict:
    """``config.json`` of a model folder or Hub id as a plain dict; nothing of the model is run.

    A Hub id fetches that one file (from the cache alone under ``HF_HUB_OFFLINE=1``)."""
    text = str(model)
    local = Path(text).expanduser()
    if is_local_reference(model) or local.exists():
        if not local.is_dir():
            raise FileNotFoundError(f"{text}: no such model folder")
        path = local / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{text} is not a model folder (it has no config.json)")
    else:
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(text, "config.json"))
        except Exception as error:  # offline, no such repo, gated, bad id: all "cannot be fetched"
            raise OSError(
                f"{text}: not a local folder, and its config.json cannot be fetched from the Hub "
                f"({type(error).__name__}); pass the folder of a saved model"
            ) from error
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{text}: config.json is not valid JSON ({error})") from error
    if not isinstance(config, dict):
        raise ValueError(f"{text}: config.json holds {type(config).__name__}, expected an object")
    return config


def check_model(model: str | os.PathLike, allow_stock: bool = True) -> dict:
    """The config dict of ``model`` when serhub may load it, else :class:`UntrustedModelError`.

    Trusted: serhub's own model types, and (``allow_stock``) types built into transformers. Anything
    else would need the model's own code, which serhub never runs for a model it was handed."""
    config = read_model_config(model)
    model_type = config.get("model_type")
    if model_type in SERHUB_MODEL_TYPES:
        return config
    if allow_stock and isinstance(model_type, str) and _is_builtin(model_type):
        return config
    accepted = "serhub's model types" + (" or a transformers model type" if allow_stock else "")
    raise UntrustedModelError(
        f"{model} has model_type {model_type!r}, which is not {accepted} ({', '.join(sorted(SERHUB_MODEL_TYPES))}); "
        "serhub does not run code that comes with a model. Load it yourself with "
        "trust_remote_code=True if you trust its author."
    )


def trust_remote_code_for(config: dict) -> bool:
    """What to pass as ``trust_remote_code`` for a model :func:`check_model` accepted: ``False`` when
    its type is registered in this process (serhub installed: its own classes run), ``True`` only for
    a serhub type inside a checkpoint's own remote code, where serhub is not installed."""
    from transformers import CONFIG_MAPPING

    return config.get("model_type") in SERHUB_MODEL_TYPES and config.get("model_type") not in CONFIG_MAPPING


def _is_builtin(model_type: str) -> bool:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return model_type in CONFIG_MAPPING_NAMES


__all__ = [
    "SERHUB_MODEL_TYPES",
    "UntrustedModelError",
    "add_auto_map_entries",
    "check_model",
    "read_model_config",
    "trust_remote_code_for",
]
