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
like ``pipeline("audio-classification")``. Needs ``pip install "serhub[onnx]"`` (onnx, onnxruntime, onnxscript).

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

ONNX_FILE = "model.onnx"
REPORT_FILE = "onnx_export.json"
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


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"ONNX export needs onnx, onnxruntime and onnxscript ({err}); install them with "
            '`pip install "serhub[onnx]"`.'
        ) from None


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


def check_top_k(top_k) -> None:
    """``top_k``: a positive integer, or None for every label (as ``pipeline("audio-classification")``)."""
    if top_k is not None and (
        isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1
    ):
        raise ValueError(f"top_k must be a positive integer or None, got {top_k!r} (None: every label)")


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
    per_second = 100 if name == "input_features" else extractor.sampling_rate  # mel frames or samples
    clips = [
        c
        for c in check_clips(extractor.sampling_rate)
        if len(c) / extractor.sampling_rate * per_second < max_len
    ]
    example = extractor(clips[:2], sampling_rate=extractor.sampling_rate, return_tensors="pt")
    batch, length = torch.export.Dim("batch", min=1), torch.export.Dim("length", min=2, max=max_len)
    outputs = ["logits", "dimensional"] if wrapped.dimensional else ["logits"]
    with atomic_output_dir(output_dir, overwrite=overwrite) as tmp:
        torch.onnx.export(
            wrapped,
            (example[name], example["attention_mask"]),
            str(tmp / ONNX_FILE),
            dynamo=True,
            opset_version=opset,
            input_names=[name, "attention_mask"],
            output_names=outputs,
            dynamic_shapes={"inputs": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}},
        )
        written = graph_opset(tmp / ONNX_FILE)
        if written != opset:
            raise ValueError(
                f"--opset {opset} was asked for, but torch.onnx wrote a graph of opset {written}; nothing was "
                f"saved. Pass --opset {written}."
            )
        session = ort.InferenceSession(str(tmp / ONNX_FILE), providers=["CPUExecutionProvider"])
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


class OnnxAudioClassifier:
    """An exported classifier on onnxruntime, called like ``pipeline("audio-classification")``:
    ``clf(audio, top_k=3)`` -> ``[{"label", "score"}]`` (a list of them for a list of clips).

    ``audio`` is what the pipeline takes: one clip (a mono 1-D numpy array or torch tensor at
    ``sampling_rate``, a ``{"raw" or "array": samples, "sampling_rate": rate}`` dict, or the path of a file
    ffmpeg decodes) or a list of them; other rates are resampled (torchaudio, as the pipeline does).
    2-D (multichannel) arrays are refused, as serhub's feature extractor refuses them, and so is a clip
    longer than the graph's encoder window (``max_seconds``): cut longer audio as ``serhub timeline`` does.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        _require_onnx()
        import onnxruntime as ort

        from serhub.modeling.feature_extraction_speech_emotion import SpeechEmotionFeatureExtractor

        path = Path(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(path / ONNX_FILE), options, providers=["CPUExecutionProvider"]
        )
        self.extractor = SpeechEmotionFeatureExtractor.from_pretrained(path)
        config = json.loads((path / "config.json").read_text())
        self.labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        self.input_name = self.session.get_inputs()[0].name
        report = path / REPORT_FILE  # the longest input (mel frames or samples) the graph takes
        self.max_input_length = (
            json.loads(report.read_text()).get("max_input_length") if report.is_file() else None
        )

    @property
    def max_seconds(self) -> float | None:
        """The longest clip the graph takes, in seconds (one encoder window); None when not recorded."""
        if self.max_input_length is None:
            return None
        return self.max_input_length / self._inputs_per_second()

    def _inputs_per_second(self) -> float:
        fe = self.extractor
        return fe.sampling_rate / fe.hop_length if fe.feature_type == "log_mel" else fe.sampling_rate

    def logits(self, clips: list[np.ndarray], sampling_rate: int = 16000) -> np.ndarray:
        feats = self.extractor(clips, sampling_rate=sampling_rate, return_tensors="np")
        if self.max_input_length is not None:
            for i, n in enumerate(feats["attention_mask"].sum(1)):
                if n > self.max_input_length:
                    raise ValueError(
                        f"audio #{i} is {n / self._inputs_per_second():.2f} s long, but the exported graph takes "
                        f"at most {self.max_seconds:.2f} s (one encoder window, {self.max_input_length} inputs); "
                        "cut it into windows of at most that length (as `serhub timeline` does) or classify "
                        "it with the PyTorch model."
                    )
        inputs = {self.input_name: feats[self.input_name], "attention_mask": feats["attention_mask"]}
        return self.session.run(["logits"], inputs)[0]

    def clip(self, audio, sampling_rate: int = 16000, name: str = "audio") -> np.ndarray:
        """One clip as mono float32 samples at the model's rate (see the class docstring for ``audio``)."""
        import torch

        from serhub.modeling.feature_extraction_speech_emotion import pcm_to_float

        if isinstance(audio, (str, os.PathLike)):
            from serhub.audio_io import SAMPLING_RATE, stream_audio

            audio, sampling_rate = (
                np.concatenate([np.zeros(0, np.float32), *stream_audio(audio)]),
                SAMPLING_RATE,
            )
        elif isinstance(audio, dict):
            if "sampling_rate" not in audio or not ("raw" in audio or "array" in audio):
                raise ValueError(
                    f"{name} is a dict with keys {sorted(audio)}; expected the samples under 'raw' or 'array' "
                    "and their rate under 'sampling_rate', e.g. {'raw': samples, 'sampling_rate': 16000}."
                )
            audio, sampling_rate = audio["raw"] if "raw" in audio else audio["array"], audio["sampling_rate"]
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        if not isinstance(audio, np.ndarray):
            raise ValueError(
                f"{name} is a {type(audio).__name__}; expected a mono 1-D numpy array or torch tensor, a "
                "{'raw': samples, 'sampling_rate': rate} dict or a file path (a list of these for a batch)."
            )
        if audio.ndim != 1:
            raise ValueError(
                f"{name}: expected mono 1-D audio, got shape {audio.shape}; average the channels first, "
                "`audio.mean(axis=1)` for (samples, channels) or `audio.mean(axis=0)` for (channels, samples)."
            )
        audio = pcm_to_float(audio)
        if (
            isinstance(sampling_rate, bool)
            or not isinstance(sampling_rate, numbers.Real)
            or not float(sampling_rate).is_integer()
            or sampling_rate <= 0
        ):
            raise ValueError(f"{name}: sampling_rate must be a positive integer (Hz), got {sampling_rate!r}")
        if int(sampling_rate) != self.extractor.sampling_rate:  # as pipeline("audio-classification")
            from torchaudio import functional as F

            audio = F.resample(
                torch.from_numpy(np.ascontiguousarray(audio)),
                int(sampling_rate),
                self.extractor.sampling_rate,
            ).numpy()
        return audio

    def __call__(self, audio, sampling_rate: int = 16000, top_k: int | None = 5):
        check_top_k(top_k)
        single = not isinstance(audio, (list, tuple))
        if not single and any(np.isscalar(x) for x in audio):
            raise ValueError(
                "audio is a list of numbers; a list is a batch of clips. Pass one clip as a 1-D array "
                "(`np.asarray(samples, dtype=np.float32)`), or a batch as a list of 1-D arrays."
            )
        if not single and not audio:
            return []
        clips = [self.clip(audio, sampling_rate)] if single else [
            self.clip(a, sampling_rate, f"audio #{i}") for i, a in enumerate(audio)
        ]  # fmt: skip
        logits = self.logits(clips, self.extractor.sampling_rate)
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        results = [
            [{"label": self.labels[j], "score": float(p[j])} for j in np.argsort(-p)[:top_k]] for p in probs
        ]
        return results[0] if single else results


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
    "OnnxAudioClassifier",
    "check_exportable",
    "check_output_outside_model",
    "check_top_k",
    "export_onnx",
]
