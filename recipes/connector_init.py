"""``--init_connector``: start an audio-LLM's connector from one trained before (an aligned start).

A connector that has learnt to turn the encoder's frames into tokens the LLM reads (EmoSLLM's phases
1-2 on ASR, or phase 0's CTC alignment) is worth reusing: ``recipes/whisper_llm.py`` and
``recipes/descriptors.py`` train their connector from scratch otherwise. The source is a folder:

- an audio-LLM model folder (a recipe's output, or a stage folder such as ``outputs/emosllm/phase1``):
  its ``config.json`` must describe the same connector (name and shape-setting fields) over an encoder
  and an LLM of the same architecture, and its safetensors weights hold ``connector.*``;
- a phase-0 folder (``phase0_ctc``): ``connector.safetensors`` alone, checked by its tensors' shapes.

Only safetensors files are read (no pickle), only tensors are loaded, and the folder is the operator's
choice on the command line. The recipes check the folder when they parse their arguments, before
anything is written, and the tensors' shapes when they build the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from serhub.modeling import AudioLLMConfig
from serhub.recipes.logs import get_logger

logger = get_logger("audio_llm")

PREFIX = "connector."
# config fields that fix a connector's tensors or the meaning of its inputs and outputs, per connector;
# the LLM and encoder are compared by architecture (FINGERPRINT), not by folder name
SHAPING_FIELDS = {
    "linear": ("stack_factor", "projector_frame_norm"),
    "query_pooling": (
        "num_queries",
        "mapper_layers",
        "mapper_hidden_size",
        "mapper_heads",
        "mapper_frame_norm",
        "mapper_positions",
    ),  # fmt: skip
    "vae_ib": ("stack_factor", "vib_latent_size"),
    "ctc_path": ("stack_factor", "num_queries", "mapper_layers", "mapper_hidden_size", "mapper_heads"),
}
FINGERPRINT = ("model_type", "hidden_size", "d_model", "vocab_size", "num_hidden_layers", "encoder_layers")


def _fingerprint(sub_config) -> dict:
    data = sub_config if isinstance(sub_config, dict) else sub_config.to_dict()
    return {k: data[k] for k in FINGERPRINT if k in data}


def _describe(config: dict) -> str:
    name = config.get("connector")
    fields = ", ".join(f"{k}={config.get(k)!r}" for k in SHAPING_FIELDS.get(name, ()))
    return f"{name!r} ({fields})" if fields else repr(name)


def check_source_config(source: Path, config: dict, here: dict) -> None:
    """Refuse a source whose connector, encoder or LLM differs from the run's (``here``: the run's
    config as a dict, or its arguments; backbones are compared where both name them), saying which."""
    problems = []
    if config.get("model_type") != AudioLLMConfig.model_type:
        raise ValueError(
            f"--init_connector {source}: its config.json is of a {config.get('model_type')!r} model, not a "
            "serhub audio-LLM. Give the folder of an audio-LLM recipe's output or stage (e.g. "
            "outputs/emosllm/phase1), or a phase0_ctc folder."
        )
    if config.get("connector") != here.get("connector") or any(
        config.get(k) != here.get(k) for k in SHAPING_FIELDS.get(here.get("connector"), ())
    ):
        problems.append(f"its connector is {_describe(config)}; this run's is {_describe(here)}")
    for part, key in (("LLM", "text_config"), ("speech encoder", "audio_config")):
        if key in here:
            theirs, ours = _fingerprint(config.get(key, {})), _fingerprint(here[key])
            if theirs != ours:
                problems.append(f"its {part} is {theirs}; this run's is {ours}")
    if problems:
        raise ValueError(
            f"--init_connector {source}: " + "; ".join(problems) + ". Train the source with this run's "
            "connector settings and backbones (or change this run's to match), or drop --init_connector."
        )


def check_init_connector(model_args) -> None:
    """Before anything runs: the folder ``--init_connector`` names exists, holds safetensors weights
    and (where it has a config) the connector this run's arguments ask for."""
    if not model_args.init_connector:
        return
    source = _source_folder(model_args.init_connector)
    _weight_files(source)
    if (source / "config.json").is_file():
        check_source_config(source, json.loads((source / "config.json").read_text()), vars(model_args))


def _source_folder(source: str | Path) -> Path:
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"--init_connector {source}: no such folder. Give an audio-LLM model or stage folder "
            "(e.g. outputs/emosllm/phase1) or a phase0_ctc folder."
        )
    return folder


def _weight_files(source: Path) -> list[Path]:
    index = source / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [source / n for n in names]
    for name in ("model.safetensors", "connector.safetensors"):
        if (source / name).is_file():
            return [source / name]
    raise FileNotFoundError(
        f"--init_connector {source}: no model.safetensors (or connector.safetensors) in it; only "
        "safetensors weights are read. Give a folder a serhub audio-LLM recipe saved."
    )


def connector_state(source: str | Path, model_config=None) -> dict[str, torch.Tensor]:
    """The connector's tensors saved in ``source`` (keys as in ``model.connector.state_dict()``),
    after checking the folder's config against ``model_config`` where it has one."""
    from safetensors import safe_open

    source = _source_folder(source)
    files = _weight_files(source)
    if (source / "config.json").is_file() and model_config is not None:
        check_source_config(source, json.loads((source / "config.json").read_text()), model_config.to_dict())
    state = {}
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            prefixed = [k for k in f.keys() if k.startswith(PREFIX)]
            if path.name == "connector.safetensors" and not prefixed:
                state.update({k: f.get_tensor(k) for k in f.keys()})
            else:
                state.update({k[len(PREFIX) :]: f.get_tensor(k) for k in prefixed})
    if not state:
        raise ValueError(f"--init_connector {source}: its weights hold no connector ('{PREFIX}*' tensors)")
    return state


def init_connector(model, source: str | Path) -> int:
    """Load ``source``'s connector into ``model.connector`` (every tensor, shapes checked); returns the
    number of tensors loaded. Raises with what differs when the connectors do not match."""
    state = connector_state(source, model.config)
    own = model.connector.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k}: {tuple(state[k].shape)} there, {tuple(own[k].shape)} here"
        for k in sorted(set(own) & set(state))
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        details = "; ".join(
            part
            for part in (
                f"missing {missing[:5]}" if missing else "",
                f"unexpected {unexpected[:5]}" if unexpected else "",
                f"other shapes {mismatched[:3]}" if mismatched else "",
            )
            if part
        )
        raise ValueError(
            f"--init_connector {source}: its connector does not fit this run's "
            f"({model.config.connector_class.describe(model.config)}): {details}. Give a source trained with "
            "the same connector, encoder and LLM."
        )
    with torch.no_grad():
        for key, tensor in own.items():
            tensor.copy_(state[key].to(dtype=tensor.dtype))
    logger.info("connector initialised from %s (%d tensors)", source, len(state))
    return len(state)


def card_row(model_args) -> dict:
    """The model card's training-config row naming where the connector started (none: a fresh one)."""
    return {"connector's start": model_args.init_connector} if model_args.init_connector else {}


__all__ = ["card_row", "check_init_connector", "check_source_config", "connector_state", "init_connector"]
