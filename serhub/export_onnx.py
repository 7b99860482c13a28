"""Export a serhub speech-emotion classifier to ONNX, checked against PyTorch with onnxruntime.

    python -m serhub.export_onnx --model outputs/ssl_classifier --output_dir outputs/ssl_classifier-onnx

The graph takes the feature extractor's output and the attention mask, with a dynamic batch and a
dynamic length (up to one encoder window: 30 s for Whisper, ``chunk_length_s`` for the others; longer
audio is cut into windows by the caller, as ``timeline`` does), and returns ``logits`` (and
``dimensional`` when the model predicts arousal/valence/dominance). It is made with PyTorch's own
exporter (``torch.onnx.export(dynamo=True)``), not hand-written graph code.

``OUT`` holds ``model.onnx``, the feature extractor, the model's ``config.json`` (labels) and
``onnx_export.json``: the largest |logit difference| to PyTorch on real clips of several lengths, alone
and batched (the export is refused above ``--tolerance``, 1e-4). ``OnnxAudioClassifier(OUT)`` runs it
like ``pipeline("audio-classification")`` (:mod:`serhub.onnx_classifier`). Needs
``pip install "serhub[onnx]"`` (onnx, onnxruntime, onnxscript).

Only serhub's speech classifiers (``model_type`` "ser_speech_emotion") are exported: the audio-LLMs score
labels with an LLM and a KV cache. ``OUT`` must lie outside the model folder (and not contain it), since
``--overwrite`` replaces ``OUT`` as a whole.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import numbers
import os
from pathlib import Path

import numpy as np
import torch

from serhub.modeling.encoder_family import encoder_family
from serhub.modeling.file_utils import atomic_output_dir, check_output_dir
from serhub.modeling.remote_code import read_model_config
from serhub.onnx_classifier import ONNX_FILE, REPORT_FILE, OnnxAudioClassifier, _require_onnx, check_top_k

CHECK_SECONDS = (0.4, 1.7, 3.0, 5.5)
EXPORTABLE_MODEL_TYPE = "ser_speech_emotion"
# torch.onnx's dynamo exporter translates with onnxscript's torchlib at opset 18 and only tries to convert
# the graph down from it (torch.onnx._internal.exporter._constants.TORCHLIB_OPSET), keeping 18 when it cannot
MIN_OPSET = 18


class _Exportable(torch.nn.Module):
    """The classifier as a function of (features, mask) -> logits [, dimensional]."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.input_name = encoder_family(model.config.audio_config).input_name
        self.dimensional = bool(model.config.dimensions)

    def forward(self, inputs: torch.Tensor, attention_mask: torch.Tensor):
        out = self.model(**{self.input_name: inputs}, attention_mask=attention_mask)
        return (out.logits, out.dimensional) if self.dimensional else out.logits


def check_clips(sampling_rate: int = 16000) -> list[np.ndarray]:
    """Real speech of several lengths (Debian's Asterisk prompts) when installed, else noise."""
    import soundfile as sf

    clips = []
    for path in sorted(glob.glob("/usr/share/asterisk/sounds/en/*.wav"))[:8]:
        audio, rate = sf.read(path, dtype="float32")
        if rate == 8000:  # telephone speech: repeat samples to 16 kHz (a check input, not a model input)
            audio = np.repeat(audio, 2)
        clips.append(audio)
    rng = np.random.default_rng(0)
    out = []
    for i, seconds in enumerate(CHECK_SECONDS):
        n = int(seconds * sampling_rate)
        source = clips[i % len(clips)] if clips else 0.1 * rng.standard_normal(n).astype(np.float32)
        out.append(np.resize(source, n).astype(np.float32))
    return out


def check_exportable(model_dir: str | os.PathLike) -> dict:
    """The model's config.json (read alone, nothing run) when it is a serhub speech classifier, else a
    ``ValueError`` naming the type found: anything else would load as a random classifier."""
    config = read_model_config(model_dir)
    found = config.get("model_type")
    if found != EXPORTABLE_MODEL_TYPE:
        architectures = ", ".join(config.get("architectures") or []) or "no architectures"
        raise ValueError(
            f"{model_dir} has model_type {found!r} ({architectures}); ONNX export takes serhub speech-emotion "
            f"classifiers only (model_type {EXPORTABLE_MODEL_TYPE!r}, SpeechEmotionForAudioClassification, as "
            "recipes/ssl_classifier.py saves them). The audio-LLMs are not exported: they score labels with the LLM."
        )
    if config.get("speaker_prosody"):
        raise ValueError(
            f"{model_dir} reads prosody numbers (measured with swift-f0) relative to an enrolled speaker "
            "(--speaker_prosody); the ONNX graph takes the spectrogram alone. Export a speech classifier "
            "trained without --speaker_prosody."
        )
    return config


def check_output_outside_model(model_dir: str | os.PathLike, output_dir: str | os.PathLike) -> None:
    """Refuse an output folder that is the model folder, inside it, or around it (symlinks resolved):
    the export (``--overwrite`` replaces the output folder whole) would delete or change the model."""
    model = Path(model_dir).expanduser()
    if not model.exists():  # a Hub id: its files live in the Hub cache
        return
    model, out = model.resolve(), Path(output_dir).expanduser().resolve()
    where = (
        "is the model folder" if out == model
        else "is inside the model folder" if model in out.parents
        else "contains the model folder" if out in model.parents
        else None
    )  # fmt: skip
    if where:
        raise ValueError(
            f"--output_dir {output_dir} {where} {model_dir} (both resolved: {out}, {model}); the export would "
            f"replace or change the trained model. Choose a folder outside it, e.g. {model.parent / (model.name + '-onnx')}."
        )


def check_export_options(opset, tolerance) -> None:
    """``opset``: an integer the exporter writes as asked (``MIN_OPSET`` up to the newest opset the installed
    onnx knows); ``tolerance``: a finite number >= 0 (NaN or inf would switch the parity check off)."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, numbers.Integral) or not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"--opset must be an integer from {MIN_OPSET} to {newest}, got {opset!r}: torch.onnx's exporter "
            f"writes opset {MIN_OPSET} and newer (onnx {onnx.__version__} knows up to {newest}); pass --opset "
            f"{MIN_OPSET} (the default) for the widest onnxruntime support."
        )
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, numbers.Real)
        or not (math.isfinite(tolerance) and tolerance >= 0)
    ):
        raise ValueError(
            f"--tolerance must be a finite number >= 0 (the largest |logit difference| to PyTorch accepted), "
            f"got {tolerance!r}; NaN or inf would accept any graph. Pass e.g. --tolerance 1e-4 (the default)."
        )


def graph_opset(path: str | os.PathLike) -> int:
    """The default-domain (ai.onnx) opset an ONNX file declares."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def export_onnx(
    model_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    opset: int = 18,
    tolerance: float = 1e-4,
    overwrite: bool = False,
) -> dict:
    """Export, check against PyTorch on ``check_clips()`` (one by one and as one batch) and save;
    returns the report written to ``onnx_export.json`` (its ``opset`` read back from the graph)."""
    _require_onnx()
    import onnxruntime as ort

    check_export_options(opset, tolerance)

    from serhub.modeling.feature_extraction_speech_emotion import SpeechEmotionFeatureExtractor
    from serhub.modeling.modeling_speech_emotion import SpeechEmotionForAudioClassification

    check_exportable(model_dir)  # before the slow part: reads config.json only
    check_output_outside_model(model_dir, output_dir)
    check_output_dir(output_dir, overwrite, replaced=True)
    model = SpeechEmotionForAudioClassification.from_pretrained(model_dir).eval()
    extractor = SpeechEmotionFeatureExtractor.from_pretrained(model_dir)
    wrapped = _Exportable(model).eval()
    name = wrapped.input_name
    max_len = model.encoder.chunk  # one encoder window; longer inputs take another code path
    clips = _clips_within(extractor, name, max_len)
    outputs = ["logits", "dimensional"] if wrapped.dimensional else ["logits"]
    with atomic_output_dir(output_dir, overwrite=overwrite) as tmp:
        written = _write_graph(wrapped, extractor, clips[:2], tmp / ONNX_FILE, opset, max_len, outputs)
        worst = _largest_difference(wrapped, extractor, clips, tmp / ONNX_FILE)
        if worst > tolerance:
            raise ValueError(
                f"the ONNX graph differs from PyTorch by up to {worst:.2e} (> {tolerance:.0e}) on the check clips; "
                "nothing was saved. Try another --opset, or report the model's encoder."
            )
        extractor.save_pretrained(tmp)
        model.config.save_pretrained(tmp)
        report = {
            "source": str(model_dir),
            "opset": written,
            "inputs": [name, "attention_mask"],
            "outputs": outputs,
            "max_input_length": max_len,
            "check_clip_seconds": [round(len(c) / extractor.sampling_rate, 2) for c in clips],
            "max_abs_difference": worst,
            "tolerance": tolerance,
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
        }
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _clips_within(extractor, input_name: str, max_len: int) -> list[np.ndarray]:
    """The :func:`check_clips` that fit one encoder window (``max_len`` mel frames or samples)."""
    per_second = 100 if input_name == "input_features" else extractor.sampling_rate  # mel frames or samples
    return [
        c
        for c in check_clips(extractor.sampling_rate)
        if len(c) / extractor.sampling_rate * per_second < max_len
    ]


def _write_graph(wrapped, extractor, example_clips, path: Path, opset: int, max_len: int, outputs) -> int:
    """Export ``wrapped`` to ``path`` with a dynamic batch and length (up to ``max_len``), traced on
    ``example_clips``; returns the opset written, ``ValueError`` when it is not ``opset``."""
    name = wrapped.input_name
    example = extractor(example_clips, sampling_rate=extractor.sampling_rate, return_tensors="pt")
    batch, length = torch.export.Dim("batch", min=1), torch.export.Dim("length", min=2, max=max_len)
    torch.onnx.export(
        wrapped,
        (example[name], example["attention_mask"]),
        str(path),
        dynamo=True,
        opset_version=opset,
        input_names=[name, "attention_mask"],
        output_names=outputs,
        dynamic_shapes={"inputs": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}},
    )
    written = graph_opset(path)
    if written != opset:
        raise ValueError(
            f"--opset {opset} was asked for, but torch.onnx wrote a graph of opset {written}; nothing was "
            f"saved. Pass --opset {written}."
        )
    return written


def _largest_difference(wrapped, extractor, clips, path: Path) -> float:
    """The largest |output difference| between PyTorch and the graph at ``path`` on onnxruntime, over
    the clips one by one and as one batch."""
    import onnxruntime as ort

    name = wrapped.input_name
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for group in [[c] for c in clips] + [clips]:
        feats = extractor(group, sampling_rate=extractor.sampling_rate, return_tensors="pt")
        with torch.no_grad():
            expected = wrapped(feats[name], feats["attention_mask"])
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session.run(
            None, {name: feats[name].numpy(), "attention_mask": feats["attention_mask"].numpy()}
        )
        worst = max(worst, *(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected)))
    return worst


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="a serhub speech-emotion classifier folder (or Hub id)"
    )
    parser.add_argument("--output_dir", required=True, help="a new folder outside the model folder")
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest |logit difference| accepted")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def run(args: argparse.Namespace) -> dict:
    report = export_onnx(args.model, args.output_dir, args.opset, args.tolerance, args.overwrite)
    print(
        f"exported to {args.output_dir}: max |logit difference| to PyTorch {report['max_abs_difference']:.2e}"
    )
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()


__all__ = [
    "ONNX_FILE",
    "REPORT_FILE",
    "OnnxAudioClassifier",
    "check_clips",
    "check_exportable",
    "check_output_outside_model",
    "check_top_k",
    "export_onnx",
    "graph_opset",
]
