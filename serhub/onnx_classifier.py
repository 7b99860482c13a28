"""A classifier exported by :mod:`serhub.export_onnx`, run on onnxruntime and called like
``pipeline("audio-classification")``: :class:`OnnxAudioClassifier`. Needs ``pip install "serhub[onnx]"``."""

from __future__ import annotations

import json
import numbers
import os
from pathlib import Path

import numpy as np

ONNX_FILE = "model.onnx"
REPORT_FILE = "onnx_export.json"


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


def check_top_k(top_k) -> None:
    """``top_k``: a positive integer, or None for every label (as ``pipeline("audio-classification")``)."""
    if top_k is not None and (
        isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1
    ):
        raise ValueError(f"top_k must be a positive integer or None, got {top_k!r} (None: every label)")


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


__all__ = ["ONNX_FILE", "REPORT_FILE", "OnnxAudioClassifier", "check_top_k"]
