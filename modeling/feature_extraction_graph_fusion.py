"""Inputs of the graph-fusion model from audio alone: Whisper's log-mel frames (the speech encoders
and the spectral CNN), frame-level F0 (swift-f0, the prosody branch) and the 16 kHz waveform (the ASR
sub-model that writes the transcript)."""

from __future__ import annotations

import numpy as np
from transformers import BatchFeature

from .feature_extraction_speech_emotion import SpeechEmotionFeatureExtractor, _to_float_mono
from .prosody import pad_pitch, track_pitch


class GraphFusionFeatureExtractor(SpeechEmotionFeatureExtractor):
    r"""``input_features`` (B, T, n_mels) + ``attention_mask``, ``pitch_hz`` (B, T_f0; 0 unvoiced, -1
    padding), ``input_values`` (B, N) raw samples + ``audio_attention_mask``, and with
    ``return_prosody`` each clip's ``prosody_values`` (B, 10). Args as ``SpeechEmotionFeatureExtractor``
    (log-mel), plus ``with_pitch`` and ``with_waveform``."""

    model_input_names = [
        "input_features",
        "attention_mask",
        "pitch_hz",
        "input_values",
        "audio_attention_mask",
    ]

    def __init__(self, feature_size: int = 80, with_pitch: bool = True, with_waveform: bool = True, **kwargs):
        kwargs.pop("feature_type", None)
        super().__init__(feature_type="log_mel", feature_size=feature_size, **kwargs)
        self.with_pitch = with_pitch
        self.with_waveform = with_waveform
        self.model_input_names = list(GraphFusionFeatureExtractor.model_input_names)
        if self.return_prosody:  # a speaker_prosody model's prosody node reads them
            self.model_input_names.append("prosody_values")

    def __call__(
        self, raw_speech, sampling_rate: int | None = None, return_tensors=None, **kwargs
    ) -> BatchFeature:
        out = super().__call__(raw_speech, sampling_rate=sampling_rate, return_tensors=None)
        batched = (
            isinstance(raw_speech, (list, tuple)) and len(raw_speech) > 0 and not np.isscalar(raw_speech[0])
        )
        clips = [_to_float_mono(x, i) for i, x in enumerate(raw_speech if batched else [raw_speech])]
        data = dict(out)
        if self.with_pitch:
            pitch = pad_pitch([track_pitch(x, self.sampling_rate) for x in clips])
            data["pitch_hz"] = pitch
        if self.with_waveform:
            longest = max(1, max(len(x) for x in clips))
            audio = np.zeros((len(clips), longest), dtype=np.float32)
            for i, x in enumerate(clips):
                audio[i, : len(x)] = x
            data["input_values"] = audio
            data["audio_attention_mask"] = (
                np.arange(longest)[None] < np.array([len(x) for x in clips])[:, None]
            ).astype(np.int32)
        return BatchFeature(data, tensor_type=return_tensors)


__all__ = ["GraphFusionFeatureExtractor"]
