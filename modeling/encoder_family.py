"""What differs between the speech-encoder families serhub wraps, in one place.

Whisper's encoder (log-mel input, two convolutions, 30-s positions, weights under ``.encoder`` of the
pretrained model) and the self-supervised encoders (WavLM, HuBERT, wav2vec2, data2vec-audio: waveform
input, a conv feature stem, ``hidden_size`` / ``num_hidden_layers``) are read through
``encoder_family(audio_config)``; both model families, the feature extractor and the encoder wrapper
ask it instead of testing ``model_type`` themselves.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncoderFamily:
    config: object  # the encoder's transformers config

    @property
    def is_whisper(self) -> bool:
        return self.config.model_type == "whisper"

    @property
    def hidden_size(self) -> int:
        return self.config.d_model if self.is_whisper else self.config.hidden_size

    @property
    def num_layers(self) -> int:
        return self.config.encoder_layers if self.is_whisper else self.config.num_hidden_layers

    @property
    def input_name(self) -> str:
        """The feature extractor's output the encoder reads: log-mel frames or the waveform."""
        return "input_features" if self.is_whisper else "input_values"

    @property
    def convs(self) -> list[tuple[int, int, int]]:
        """(kernel, stride, padding) of the time-downsampling convolutions, input frames -> encoder frames."""
        if self.is_whisper:
            return [(3, 1, 1), (3, 2, 1)]
        return [(k, s, 0) for k, s in zip(self.config.conv_kernel, self.config.conv_stride)]

    def max_chunk(self, chunk_length_s: float) -> int:
        """Input frames (mel frames or samples) encoded at once: Whisper's 30-s window at most."""
        if self.is_whisper:
            return min(int(chunk_length_s * 100), self.config.max_source_positions * 2)
        return int(chunk_length_s * 16000)

    @property
    def padding_leaks(self) -> bool:
        """Outputs at valid frames depend on padding: a group-normalised conv stem (wav2vec2-base,
        HuBERT-base) normalises over time, and data2vec-audio's stacked positional convolutions leak
        padded frames into valid ones. Such encoders encode a ragged batch clip by clip."""
        if self.is_whisper:
            return False
        return (
            self.config.model_type == "data2vec-audio"
            or getattr(self.config, "feat_extract_norm", "layer") == "group"
        )

    def weights_module(self, pretrained):
        """The part of a pretrained ``AutoModel`` that holds the encoder (Whisper: its ``.encoder``)."""
        return pretrained.encoder if self.is_whisper else pretrained


def encoder_family(audio_config) -> EncoderFamily:
    return EncoderFamily(audio_config)


__all__ = ["EncoderFamily", "encoder_family"]
