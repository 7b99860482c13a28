"""Waveform augmentation for serhub's audio recipes: additive noise at a random SNR (coloured noise,
or babble made from other clips), room reverberation, telephone band, mu-law codec and gain.

    from serhub.augment import Augmenter

    augmenter = Augmenter(seed=0)                          # AugmentConfig's defaults
    noisy = augmenter(waveform, 16_000)                    # one clip, the augmenter's own generator
    clips = augmenter.augment_batch(clips, 16_000)         # babble from the other clips of the batch
    live = train.with_transform(augmenter.transform_function())    # a new copy on every read
    copy = train.map(augmenter.map_function(epoch=0), batched=True, with_indices=True,
                     new_fingerprint=augmenter.fingerprint(0, 1000))  # one fixed copy, e.g. to cache

Each transform is applied with its own probability, in the order of ``TRANSFORMS`` (the room, then
the noise in the room, then the channel: telephone band, codec, and the recording gain). Input and
output are mono float32 in [-1, 1]; an output that would leave [-1, 1] is scaled back and counted in
``Augmenter.counts["rescaled"]``, never clipped. With ``key=`` (``map_function`` passes
``(epoch, row)``) a clip's augmentation depends only on the seed and the key, not on the order or
the process that augments it. Numpy only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np

logger = logging.getLogger(__name__)

SAMPLING_RATE = 16_000
NOISE_TYPES = ("white", "pink", "brown", "babble")
TELEPHONE_BAND_HZ = (300.0, 3400.0)  # ITU-T G.712 narrowband telephony
TELEPHONE_RATE = 8_000
MU = 255  # G.711 mu-law, 8 bits


# ------------------------------------------------------------------------------------- transforms
def active_power(waveform: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> float:
    """Mean power of the 20 ms frames within 40 dB of the loudest one: the speech power that an SNR
    refers to, so leading and trailing silence do not lower it. The whole clip's mean power when it is
    shorter than a frame."""
    x = np.asarray(waveform, dtype=np.float64)
    frame = int(0.020 * sampling_rate)
    if x.size < frame:
        return float(np.mean(x**2)) if x.size else 0.0
    power = (x[: x.size // frame * frame].reshape(-1, frame) ** 2).mean(axis=1)
    return float(power[power >= power.max() * 1e-4].mean())


def coloured_noise(num_samples: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f**k: white (k=0), pink (1), brown (2); unit power."""
    exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}[colour]
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0  # no DC blow-up; the DC bin is then zeroed
    spectrum *= f ** (-exponent / 2.0)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n=num_samples)
    return noise / np.sqrt(np.mean(noise**2) + 1e-20)


def babble(
    num_samples: int, pool: Sequence[np.ndarray], talkers: int, rng: np.random.Generator, sampling_rate: int
) -> np.ndarray:
    """``talkers`` clips of ``pool`` (drawn with replacement when the pool is smaller), each looped to
    ``num_samples`` from a random offset and set to unit speech power, summed; unit power."""
    mix = np.zeros(num_samples)
    for k in rng.choice(len(pool), size=talkers, replace=talkers > len(pool)):
        clip = np.asarray(pool[k], dtype=np.float64)
        clip = np.roll(np.resize(clip, num_samples), -int(rng.integers(max(clip.size, 1))))
        mix += clip / np.sqrt(active_power(clip, sampling_rate) + 1e-20)
    return mix / np.sqrt(np.mean(mix**2) + 1e-20)


def add_noise(waveform: np.ndarray, noise: np.ndarray, snr_db: float, sampling_rate: int = SAMPLING_RATE):
    """``waveform`` plus ``noise`` scaled so that speech power (:func:`active_power`) over the noise's
    mean power is ``snr_db``."""
    noise_power = np.mean(np.asarray(noise, dtype=np.float64) ** 2)
    if noise_power == 0.0:
        return waveform.astype(np.float64)
    scale = np.sqrt(active_power(waveform, sampling_rate) / (noise_power * 10.0 ** (snr_db / 10.0)))
    return waveform + scale * noise


def room_impulse_response(
    sampling_rate: int, rt60_s: float, drr_db: float, rng: np.random.Generator
) -> np.ndarray:
    """A synthetic room: a direct path, then Gaussian noise decaying by 60 dB in ``rt60_s`` (the
    statistical model of late reverberation, Schroeder 1962) from 2-6 ms on, with tail energy
    ``drr_db`` below the direct path."""
    length = int(min(1.2 * rt60_s, 2.0) * sampling_rate)
    start = int(rng.uniform(0.002, 0.006) * sampling_rate)
    t = np.arange(length - start) / sampling_rate
    tail = rng.standard_normal(t.size) * np.exp(-np.log(1000.0) * t / rt60_s)  # 10**-3: -60 dB
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / (np.sum(tail**2) + 1e-20))
    rir = np.zeros(length)
    rir[0] = 1.0
    rir[start:] = tail
    return rir


def _fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    n = 1 << int(np.ceil(np.log2(x.size + h.size - 1)))
    return np.fft.irfft(np.fft.rfft(x, n) * np.fft.rfft(h, n), n)[: x.size]


def reverberate(waveform: np.ndarray, rir: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """``waveform`` in the room ``rir`` (same length, the tail cut), at the input's speech power."""
    wet = _fft_convolve(np.asarray(waveform, dtype=np.float64), rir)
    return wet * np.sqrt(active_power(waveform, sampling_rate) / (active_power(wet, sampling_rate) + 1e-20))


def band_pass(
    waveform: np.ndarray, sampling_rate: int, low_hz: float, high_hz: float, transition_hz: float = 100.0
) -> np.ndarray:
    """Zero-phase band-pass in the frequency domain, with raised-cosine edges ``transition_hz`` wide
    outside [low_hz, high_hz] (zero padding keeps the circular convolution from wrapping)."""
    x = np.asarray(waveform, dtype=np.float64)
    n = 1 << int(np.ceil(np.log2(2 * x.size)))
    f = np.fft.rfftfreq(n, 1.0 / sampling_rate)
    mask = np.ones_like(f)
    below, above = f < low_hz, f > high_hz
    mask[below] = 0.5 * (1 + np.cos(np.pi * np.clip((low_hz - f[below]) / transition_hz, 0, 1)))
    mask[above] = 0.5 * (1 + np.cos(np.pi * np.clip((f[above] - high_hz) / transition_hz, 0, 1)))
    return np.fft.irfft(np.fft.rfft(x, n) * mask, n)[: x.size]


def telephone(waveform: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """A narrowband call: band-pass 300-3400 Hz, down to 8 kHz and back up to 16 kHz."""
    if sampling_rate != SAMPLING_RATE:
        raise ValueError(
            f"the telephone band expects {SAMPLING_RATE} Hz audio (a 2:1 round trip to 8 kHz), found "
            f"{sampling_rate} Hz; resample first (datasets.Audio(sampling_rate={SAMPLING_RATE}))"
        )
    x = np.asarray(waveform, dtype=np.float64)
    # band-limited below 3.5 kHz first, so taking every other sample (8 kHz) aliases nothing
    narrow = band_pass(x, sampling_rate, *TELEPHONE_BAND_HZ)[:: sampling_rate // TELEPHONE_RATE]
    # back to 16 kHz: zeros between the samples, the images above 4 kHz removed by the same band-pass
    wide = np.zeros(x.size)
    wide[:: sampling_rate // TELEPHONE_RATE] = narrow
    return 2.0 * band_pass(wide, sampling_rate, *TELEPHONE_BAND_HZ)


def mu_law(waveform: np.ndarray, mu: int = MU) -> np.ndarray:
    """An 8-bit mu-law codec round trip (G.711's companding): quantisation noise that follows the level."""
    x = np.clip(np.asarray(waveform, dtype=np.float64), -1.0, 1.0)
    compressed = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    codes = np.round((compressed + 1.0) / 2.0 * mu)  # 0..255
    y = 2.0 * codes / mu - 1.0
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu


# ---------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each transform (ranges are (low, high), drawn uniformly). The
    fields can be copied into a recipe's argument dataclass."""

    noise_prob: float = 0.5
    snr_db: tuple[float, float] = (5.0, 20.0)
    noise_types: tuple[str, ...] = NOISE_TYPES
    babble_talkers: tuple[int, int] = (3, 6)
    reverb_prob: float = 0.3
    rt60_s: tuple[float, float] = (0.2, 0.8)
    drr_db: tuple[float, float] = (0.0, 10.0)
    telephone_prob: float = 0.2
    codec_prob: float = 0.2
    gain_prob: float = 0.5
    gain_db: tuple[float, float] = (-6.0, 6.0)

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_prob") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} is a probability, in [0, 1]; found {value}")
            if f.name in ("snr_db", "babble_talkers", "rt60_s", "drr_db", "gain_db"):
                if len(value) != 2 or value[0] > value[1]:
                    raise ValueError(
                        f"{f.name} is a range (low, high) with low <= high; found {value}"
                        + (f", write ({value[1]}, {value[0]})" if len(value) == 2 else "")
                    )
        if self.rt60_s[0] <= 0.0:
            raise ValueError(f"rt60_s must be > 0 seconds; found {self.rt60_s}")
        if self.babble_talkers[0] < 1:
            raise ValueError(f"babble_talkers must be >= 1; found {self.babble_talkers}")
        unknown = set(self.noise_types) - set(NOISE_TYPES)
        if unknown or not self.noise_types:
            raise ValueError(
                f"noise_types must be a non-empty subset of {NOISE_TYPES}; found {self.noise_types}"
            )


# ------------------------------------------------------------------------------------- augmenter
def _noise(x, sr, rng, config: AugmentConfig, pool):
    kinds = [k for k in config.noise_types if k != "babble" or pool]  # babble needs other clips
    if not kinds:
        return x, None
    kind = kinds[rng.integers(len(kinds))]
    snr = float(rng.uniform(*config.snr_db))
    if kind == "babble":
        talkers = int(rng.integers(config.babble_talkers[0], config.babble_talkers[1] + 1))
        noise = babble(x.size, pool, talkers, rng, sr)
    else:
        noise = coloured_noise(x.size, kind, rng)
    return add_noise(x, noise, snr, sr), {"type": kind, "snr_db": snr}


def _reverb(x, sr, rng, config: AugmentConfig, pool):
    rt60, drr = float(rng.uniform(*config.rt60_s)), float(rng.uniform(*config.drr_db))
    return reverberate(x, room_impulse_response(sr, rt60, drr, rng), sr), {"rt60_s": rt60, "drr_db": drr}


def _telephone(x, sr, rng, config: AugmentConfig, pool):
    return telephone(x, sr), {}


def _codec(x, sr, rng, config: AugmentConfig, pool):
    peak = np.abs(x).max()
    scale = 1.0 / peak if peak > 1.0 else 1.0  # mu-law codes [-1, 1]; keep what is louder in range
    return mu_law(x * scale) / scale, {}


def _gain(x, sr, rng, config: AugmentConfig, pool):
    gain = float(rng.uniform(*config.gain_db))
    return x * 10.0 ** (gain / 20.0), {"gain_db": gain}


# name: (probability field of AugmentConfig, transform); applied in this order
TRANSFORMS: dict[str, tuple[str, Callable]] = {
    "reverb": ("reverb_prob", _reverb),
    "noise": ("noise_prob", _noise),
    "telephone": ("telephone_prob", _telephone),
    "codec": ("codec_prob", _codec),
    "gain": ("gain_prob", _gain),
}


class Augmenter:
    """Random waveform augmentation with a seedable generator.

    ``Augmenter(seed=0, noise_prob=1.0)`` overrides :class:`AugmentConfig` fields by keyword (or pass
    ``config=``). ``babble_pool`` holds clips that babble noise is made from; ``augment_batch`` adds the
    other clips of the batch. ``last_applied`` lists the transforms (with their drawn values) of the last
    clip; ``counts`` how often each was applied and how many outputs were scaled back into [-1, 1].
    """

    def __init__(
        self,
        config: AugmentConfig | None = None,
        seed: int = 0,
        babble_pool: Sequence[np.ndarray] = (),
        **overrides,
    ):
        if config is not None and overrides:
            raise ValueError("pass either config= or AugmentConfig fields by keyword, not both")
        self.config = config or AugmentConfig(**overrides)
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.babble_pool = [np.asarray(c, dtype=np.float32) for c in babble_pool]
        self.last_applied: list[tuple[str, dict]] = []
        self.counts = dict.fromkeys([*TRANSFORMS, "rescaled"], 0)

    def __repr__(self) -> str:
        return f"Augmenter(seed={self.seed}, config={self.config})"

    def _check(self, waveform, sampling_rate: int) -> np.ndarray:
        x = np.asarray(waveform)
        if x.ndim != 1:
            raise ValueError(
                f"expects a mono 1-D waveform, found shape {x.shape}; average the channels first"
            )
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(
                f"expects a float waveform in [-1, 1], found {x.dtype}; convert 16-bit PCM with x / 32768"
            )
        if self.config.telephone_prob > 0.0 and sampling_rate != SAMPLING_RATE:
            raise ValueError(
                f"telephone_prob > 0 needs {SAMPLING_RATE} Hz audio, found {sampling_rate} Hz; resample "
                f"first (datasets.Audio(sampling_rate={SAMPLING_RATE})) or set telephone_prob=0"
            )
        return x

    def __call__(
        self,
        waveform: np.ndarray,
        sampling_rate: int = SAMPLING_RATE,
        *,
        key: int | Sequence[int] | None = None,
        babble_pool: Sequence[np.ndarray] = (),
    ) -> np.ndarray:
        """One augmented copy of ``waveform`` (float32, same length). Without ``key`` the draws come
        from the augmenter's generator (a new copy per call); with ``key`` from ``(seed, *key)`` only."""
        x = self._check(waveform, sampling_rate)
        if x.size == 0:
            return x.astype(np.float32)
        if key is None:
            rng = self.rng
        else:
            rng = np.random.default_rng([self.seed, *np.atleast_1d(np.asarray(key, dtype=np.int64)).tolist()])
        pool = [c for c in (*babble_pool, *self.babble_pool) if np.size(c)]
        out = x.astype(np.float64)
        self.last_applied = []
        for name, (prob_field, transform) in TRANSFORMS.items():
            if rng.random() < getattr(self.config, prob_field):
                out, drawn = transform(out, sampling_rate, rng, self.config, pool)
                if drawn is not None:
                    self.last_applied.append((name, drawn))
                    self.counts[name] += 1
        peak = float(np.abs(out).max())
        if peak > 1.0:  # louder than full scale: scale back (what a recording level would do), not clip
            out = out / peak
            self.counts["rescaled"] += 1
            logger.debug("augmented clip peaked at %.2f; scaled back into [-1, 1]", peak)
        return out.astype(np.float32)

    def augment_batch(
        self,
        waveforms: Sequence[np.ndarray],
        sampling_rate: int = SAMPLING_RATE,
        keys: Sequence[int | Sequence[int]] | None = None,
    ) -> list[np.ndarray]:
        """Each clip augmented; babble for a clip is made from the *other* clips of the batch (and the
        augmenter's pool)."""
        if keys is not None and len(keys) != len(waveforms):
            raise ValueError(f"{len(keys)} keys for {len(waveforms)} waveforms; pass one key per clip")
        clips = [np.asarray(w) for w in waveforms]
        return [
            self(
                w,
                sampling_rate,
                key=None if keys is None else keys[i],
                babble_pool=clips[:i] + clips[i + 1 :],
            )
            for i, w in enumerate(clips)
        ]

    def map_function(self, audio_column: str = "audio", epoch: int = 0) -> Callable:
        """A function for ``Dataset.map(fn, batched=True, with_indices=True)`` that replaces
        ``audio_column`` with augmented audio, each row keyed by ``(epoch, row index)``: the result is
        the same for a given seed, epoch and batch size (babble comes from the map batch), whatever
        ``num_proc``. A new ``epoch`` gives new copies (several augmented copies of a training set)."""

        def augment(batch: dict, indices: list[int]) -> dict:
            audio = batch[audio_column]
            rates = {int(a["sampling_rate"]) for a in audio}
            if len(rates) > 1:
                raise ValueError(
                    f"one sampling rate per batch expected, found {sorted(rates)}; cast the column"
                )
            rate = rates.pop() if rates else SAMPLING_RATE
            clips = [np.asarray(a["array"], dtype=np.float32) for a in audio]
            out = self.augment_batch(clips, rate, keys=[(epoch, i) for i in indices])
            return {**batch, audio_column: [{"array": w, "sampling_rate": rate} for w in out]}

        return augment

    def transform_function(self, audio_column: str = "audio") -> Callable:
        """A function for ``Dataset.with_transform`` (the training split only): every read of a row
        gives a fresh augmented copy from the augmenter's generator, so each epoch hears new noise and
        rooms; reproducible for a given seed and order of reads (one generator: with DataLoader workers,
        give each worker its own ``Augmenter(seed=seed + worker_id)``)."""

        def augment(batch: dict) -> dict:
            audio = batch[audio_column]
            rates = [int(a["sampling_rate"]) for a in audio]
            out = [
                {"array": self(np.asarray(a["array"], dtype=np.float32), r), "sampling_rate": r}
                for a, r in zip(audio, rates)
            ]
            return {**batch, audio_column: out}

        return augment

    def fingerprint(self, epoch: int = 0, batch_size: int | None = None) -> str:
        """A stable id of the copies ``map_function(epoch)`` makes (config, seed, epoch and the map's
        batch size, which decides the babble): pass it as ``Dataset.map(new_fingerprint=...)`` so that
        caches keyed by the dataset's fingerprint (``recipes.data.cache_encoder_outputs``) tell the copies
        apart and find them again."""
        import hashlib

        return hashlib.sha256(f"{self.config}|{self.seed}|{epoch}|{batch_size}".encode()).hexdigest()[:16]


__all__ = [
    "NOISE_TYPES",
    "TRANSFORMS",
    "AugmentConfig",
    "Augmenter",
    "active_power",
    "add_noise",
    "babble",
    "band_pass",
    "coloured_noise",
    "mu_law",
    "reverberate",
    "room_impulse_response",
    "telephone",
]
