"""Feature extractor of serhub's speech models: raw waveform (wav2vec2 family) or Whisper log-mel.

Unlike ``WhisperFeatureExtractor`` it never pads a clip to 30 s (emotional utterances are ~3 s, and
padding costs ~10x encoder time): each clip is featurised on its own and a batch is padded to its
longest clip with an ``attention_mask``, so a clip's features do not depend on its batch.
It checks its input (sampling rate, NaN/Inf, empty, channels) and accepts integer PCM (int8, int16,
int32, uint8, ...: scaled to [-1, 1) by the range of their dtype) and float64; 64-bit integers are
refused, since their width says nothing about the PCM's (numpy's default integers hold 16-, 24- or
32-bit samples). ``pipeline("audio-classification")`` resamples a
``{"raw": array, "sampling_rate": rate}`` input at another rate itself, with torchaudio, which refuses
integers, before this extractor sees it: pass such PCM through :func:`pcm_to_float` first.
"""

from __future__ import annotations

import functools

import numpy as np
from transformers import BatchFeature, SequenceFeatureExtractor

from .encoder_family import encoder_family

FEATURE_TYPES = ("waveform", "log_mel")


def pcm_to_float(audio) -> np.ndarray:
    """``audio`` as float32 samples: integer PCM scaled to [-1, 1) by its dtype's range (int16 / 32768,
    int32 / 2**31, uint8 - 128 over 128, ...), float64 narrowed. int64 / uint64 are refused: numpy makes
    them by default (``np.array([1, 2])``) whatever the samples' width, and scaling 16-bit samples by
    2**63 would feed silence to the model. Use it on integer PCM given to
    ``pipeline("audio-classification")`` as ``{"raw": pcm_to_float(pcm), "sampling_rate": rate}`` at a
    rate other than the model's."""
    x = np.asarray(audio)
    if np.issubdtype(x.dtype, np.integer) and x.dtype.itemsize > 4:
        raise ValueError(
            f"audio samples of dtype {x.dtype}, whose width does not say the PCM's: 16-bit samples in it would "
            "be scaled by 2**63 to silence; expected int16/int32/uint8 PCM or floats in [-1, 1]. Convert them "
            "first: `audio.astype(np.int16)` for 16-bit PCM, `audio.astype(np.int32)` for 32-bit (24-bit: "
            "`(audio << 8).astype(np.int32)`), or `audio / 32768` as floats."
        )
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        x = (x.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    elif not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            f"audio samples of dtype {x.dtype}; expected floats in [-1, 1] or integer PCM (int16, int32, "
            "uint8). Convert them first, e.g. `np.asarray(audio, dtype=np.float32)` for real samples."
        )
    return x.astype(np.float32, copy=False)


def _to_float_mono(x, index: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(
            f"audio #{index} has shape {x.shape}; expected a mono 1-D waveform. Mix the channels down first, "
            "e.g. `audio.mean(axis=0)` for (channels, samples)."
        )
    if x.size == 0:
        raise ValueError(f"audio #{index} is empty (0 samples); remove it or pass at least one sample.")
    try:
        x = pcm_to_float(x)
    except ValueError as error:
        raise ValueError(f"audio #{index}: {error}") from None
    if not np.isfinite(x).all():
        raise ValueError(
            f"audio #{index} contains NaN or Inf samples; clean or drop the clip before inference."
        )
    return x


@functools.lru_cache(maxsize=8)
def _mel_filters(n_fft: int, n_mels: int, sampling_rate: int) -> np.ndarray:
    from transformers.audio_utils import mel_filter_bank

    return mel_filter_bank(
        num_frequency_bins=1 + n_fft // 2,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=sampling_rate / 2,
        sampling_rate=sampling_rate,
        norm="slaney",
        mel_scale="slaney",
    ).astype(np.float32)


class SpeechEmotionFeatureExtractor(SequenceFeatureExtractor):
    r"""Args:
    feature_type: "waveform" (normalised samples, for WavLM/HuBERT/wav2vec2/data2vec; ``input_values``
        (B, N)) or "log_mel" (Whisper's log-mel spectrogram with ``feature_size`` bins; ``input_features``
        (B, T, n_mels), time-major, transposed by the model).
    sampling_rate: expected input rate; other rates are refused (the pipeline resamples for you).
    do_normalize: zero-mean unit-variance per clip ("waveform").
    n_fft, hop_length: STFT of "log_mel" (Whisper: 400, 160).
    min_samples: "waveform" clips shorter than this (the encoder's conv receptive field, 400 samples =
        25 ms for wav2vec2/HuBERT/WavLM) are completed with silence, alike alone and in a batch.
    trim_silence_db: when set, each clip's leading and trailing stretches quieter than this many dB
        below its loudest 25 ms frame are cut (``trim_margin_s`` of them kept) before anything else, in
        training and at inference alike. A model then sees a whole recording's clip and the same speech
        cut out by voice activity detection (``serhub timeline``) the same way, and the length of a
        clip's silences cannot carry its label. None: clips as given.
    trim_margin_s: seconds kept on each side of the speech when trimming (the timeline's ``--pad``).
    trim_noise_margin_db: when set (with ``trim_silence_db``), a frame is speech only if it is also this
        many dB above the clip's noise floor (its 10th-percentile frame level; the bar never above the
        loudest frame minus this margin), so that the noise-filled pauses of a noisy recording, which
        are not ``trim_silence_db`` below its speech, are cut like a clean recording's silences. None:
        the loudest frame alone sets the bar.
    return_prosody: also return ``prosody_values`` (B, 10): each clip's measured prosody numbers
        (``prosody.measure_prosody``, on the clip as given, before trimming), for a model trained with
        ``speaker_prosody``. Needs swift-f0.
    """

    model_input_names = ["input_values", "attention_mask"]

    def __init__(
        self,
        feature_type: str = "waveform",
        feature_size: int = 1,
        sampling_rate: int = 16000,
        padding_value: float = 0.0,
        do_normalize: bool = True,
        n_fft: int = 400,
        hop_length: int = 160,
        return_attention_mask: bool = True,
        min_samples: int = 400,
        trim_silence_db: float | None = None,
        trim_margin_s: float = 0.03,
        trim_noise_margin_db: float | None = None,
        return_prosody: bool = False,
        **kwargs,
    ):
        if feature_type not in FEATURE_TYPES:
            raise ValueError(f"feature_type must be one of {FEATURE_TYPES}, got {feature_type!r}")
        super().__init__(
            feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs
        )
        self.feature_type = feature_type
        self.do_normalize = do_normalize
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.return_attention_mask = return_attention_mask
        self.min_samples = min_samples
        if trim_silence_db is not None and not trim_silence_db > 0:
            raise ValueError(f"trim_silence_db must be > 0 dB (or None: no trimming), got {trim_silence_db}")
        self.trim_silence_db = trim_silence_db
        self.trim_margin_s = trim_margin_s
        if trim_noise_margin_db is not None and (trim_silence_db is None or not trim_noise_margin_db > 0):
            raise ValueError(
                f"trim_noise_margin_db must be > 0 dB and needs trim_silence_db; got {trim_noise_margin_db} with "
                f"trim_silence_db={trim_silence_db}"
            )
        self.trim_noise_margin_db = trim_noise_margin_db
        self.return_prosody = bool(return_prosody)
        if feature_type == "log_mel":
            self.model_input_names = ["input_features", "attention_mask"]
        if self.return_prosody:
            self.model_input_names = [*self.model_input_names, "prosody_values"]

    @classmethod
    def from_encoder_feature_extractor(cls, fe) -> SpeechEmotionFeatureExtractor:
        """Mirror a WhisperFeatureExtractor / Wav2Vec2FeatureExtractor's settings."""
        if type(fe).__name__.startswith("Whisper"):
            return cls("log_mel", fe.feature_size, fe.sampling_rate, n_fft=fe.n_fft, hop_length=fe.hop_length)
        return cls("waveform", 1, fe.sampling_rate, do_normalize=getattr(fe, "do_normalize", True))

    @classmethod
    def from_encoder_pretrained(cls, encoder_name_or_path, **kwargs) -> SpeechEmotionFeatureExtractor:
        from transformers import AutoConfig, AutoFeatureExtractor

        from .offline_assets import resolve_pretrained

        encoder_name_or_path = resolve_pretrained(encoder_name_or_path)
        fe = cls.from_encoder_feature_extractor(
            AutoFeatureExtractor.from_pretrained(encoder_name_or_path, **kwargs)
        )
        config = AutoConfig.from_pretrained(encoder_name_or_path, **kwargs)
        family = encoder_family(config)
        if fe.feature_type == "waveform" and not family.is_whisper:
            kernels, strides, _ = zip(*family.convs)
            fe.min_samples = receptive_field(kernels, strides)
        return fe

    def trim_silence(self, waveform: np.ndarray) -> np.ndarray:
        """``waveform`` without its leading and trailing silence (see ``trim_silence_db``); unchanged
        when trimming is off or the clip is silent throughout."""
        if self.trim_silence_db is None:
            return waveform
        frame, hop = int(0.025 * self.sampling_rate), int(0.010 * self.sampling_rate)
        if len(waveform) <= frame:
            return waveform
        frames = np.lib.stride_tricks.sliding_window_view(waveform, frame)[::hop]
        level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
        if level.max() <= -110:  # digital silence: nothing to tell speech from
            return waveform
        bar = level.max() - self.trim_silence_db
        noise_margin = self.trim_noise_margin_db
        if noise_margin is not None:  # also above the noise floor, so noise-filled pauses are cut too
            bar = max(bar, min(np.percentile(level, 10) + noise_margin, level.max() - noise_margin))
        loud = np.flatnonzero(level >= bar)
        margin = int(self.trim_margin_s * self.sampling_rate)
        start = max(loud[0] * hop - margin, 0)
        end = min(loud[-1] * hop + frame + margin, len(waveform))
        return waveform[start:end]

    def log_mel(self, waveform: np.ndarray) -> np.ndarray:
        """Whisper's log-mel spectrogram of one clip, (n_mels, frames) with frames = len // hop."""
        import torch

        x = torch.tensor(waveform)
        if x.numel() < self.n_fft // 2 + 1:  # reflect padding needs a few samples
            x = torch.nn.functional.pad(x, (0, self.n_fft // 2 + 1 - x.numel()))
        stft = torch.stft(
            x, self.n_fft, self.hop_length, window=torch.hann_window(self.n_fft), return_complex=True
        )
        power = stft[..., :-1].abs() ** 2
        mel = torch.from_numpy(_mel_filters(self.n_fft, self.feature_size, self.sampling_rate)).T @ power
        log_spec = torch.clamp(mel, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
        frames = max(len(waveform) // self.hop_length, 1)
        return ((log_spec + 4.0) / 4.0)[:, :frames].numpy()

    def __call__(
        self, raw_speech, sampling_rate: int | None = None, return_tensors=None, **kwargs
    ) -> BatchFeature:
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            raise ValueError(
                f"audio at {sampling_rate} Hz, but this model expects {self.sampling_rate} Hz; resample first "
                "(pipeline('audio-classification') does it for {'raw': array, 'sampling_rate': rate} inputs)."
            )
        batched = (
            isinstance(raw_speech, (list, tuple)) and len(raw_speech) > 0 and not np.isscalar(raw_speech[0])
        )
        clips = [_to_float_mono(x, i) for i, x in enumerate(raw_speech if batched else [raw_speech])]
        prosody = None
        if self.return_prosody:
            from .prosody import measure_prosody

            prosody = np.stack([measure_prosody(x, self.sampling_rate) for x in clips]).astype(np.float32)
        clips = [self.trim_silence(x) for x in clips]
        if self.feature_type == "log_mel":
            # time-major (B, T, n_mels), so that generic padding (pipelines' collate) pads time
            feats = [self.log_mel(x).T for x in clips]  # each (T, n_mels)
            lengths = [len(f) for f in feats]
            out = np.full((len(feats), max(lengths), self.feature_size), self.padding_value, dtype=np.float32)
            for i, f in enumerate(feats):
                out[i, : len(f)] = f
            name = "input_features"
        else:
            if self.do_normalize:
                clips = [(x - x.mean()) / np.sqrt(x.var() + 1e-7) for x in clips]
            # shorter than the conv stem's receptive field: completed with silence, which counts as
            # part of the clip, so it gives the same scores alone and in any batch
            clips = [np.pad(x, (0, max(self.min_samples - len(x), 0))) for x in clips]
            lengths = [len(x) for x in clips]
            out = np.full((len(clips), max(lengths)), self.padding_value, dtype=np.float32)
            for i, x in enumerate(clips):
                out[i, : len(x)] = x
            name = "input_values"
        mask = (np.arange(max(lengths))[None, :] < np.asarray(lengths)[:, None]).astype(np.int32)
        data = {name: out}
        if self.return_attention_mask:
            data["attention_mask"] = mask
        if prosody is not None:
            data["prosody_values"] = prosody
        return BatchFeature(data, tensor_type=return_tensors)


def receptive_field(kernels, strides) -> int:
    """Samples one output frame of a stack of 1-D convolutions sees (the shortest usable input)."""
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides):
        field += (kernel - 1) * jump
        jump *= stride
    return field


__all__ = ["SpeechEmotionFeatureExtractor", "pcm_to_float", "receptive_field"]
