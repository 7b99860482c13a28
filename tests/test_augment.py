"""serhub.augment: measured SNR, band limits, determinism, shapes and argument checks."""

from __future__ import annotations

import numpy as np
import pytest

from serhub import augment as A

SR = 16_000
ONLY = {f"{name}_prob": 0.0 for name in ("noise", "reverb", "telephone", "codec", "gain")}


def only(name: str, **overrides) -> dict:
    """Config keywords with only transform ``name`` on (probability 1)."""
    return {**ONLY, f"{name}_prob": 1.0, **overrides}


def speech_like(seed: int = 0, seconds: float = 1.5, silence: float = 0.3) -> np.ndarray:
    """Harmonics of a gliding 120-220 Hz voice with syllable-rate modulation, between silences."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 100 * t / seconds
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum(np.sin(k * phase + rng.uniform(0, 6.28)) / k for k in range(1, 20))
    voice *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    pad = np.zeros(int(silence * SR))
    x = np.concatenate([pad, voice, pad])
    return (0.2 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def clips():
    return [speech_like(seed) for seed in range(4)]


@pytest.mark.parametrize("noise_type", ["white", "pink", "brown", "babble"])
def test_snr_measured_equals_requested(clips, noise_type):
    augmenter = A.Augmenter(seed=0, **only("noise", noise_types=(noise_type,)))
    for trial in range(5):
        x = clips[trial % len(clips)]
        y = augmenter(x, SR, babble_pool=[c for c in clips if c is not x])
        ((name, drawn),) = augmenter.last_applied
        assert name == "noise" and drawn["type"] == noise_type
        assert 5.0 <= drawn["snr_db"] <= 20.0
        noise = y.astype(np.float64) - x
        measured = 10 * np.log10(A.active_power(x, SR) / np.mean(noise**2))
        assert abs(measured - drawn["snr_db"]) < 0.5


def test_snr_on_a_fully_active_signal_is_the_plain_power_ratio():
    x = 0.1 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR).astype(np.float32)
    augmenter = A.Augmenter(seed=3, **only("noise", snr_db=(12.0, 12.0), noise_types=("pink",)))
    noise = augmenter(x, SR).astype(np.float64) - x
    assert abs(10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(noise**2)) - 12.0) < 0.5


def high_band_db(y: np.ndarray, cutoff_hz: float = 4000.0) -> float:
    power = np.abs(np.fft.rfft(y.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(y.size, 1.0 / SR)
    return 10 * np.log10(power[f > cutoff_hz].sum() / power.sum())


def test_telephone_band_limits(clips):
    white = (0.1 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)
    assert high_band_db(white) > -5.0
    augmenter = A.Augmenter(seed=0, **only("telephone"))
    for x in (white, clips[0]):
        y = augmenter(x, SR)
        assert high_band_db(y) < -30.0
        assert high_band_db(y, 3600.0) < -30.0 and y.shape == x.shape
    low = 10 * np.log10(np.sum(np.abs(np.fft.rfft(augmenter(white, SR)))[: int(200 * white.size / SR)] ** 2))
    total = 10 * np.log10(np.sum(np.abs(np.fft.rfft(augmenter(white, SR))) ** 2))
    assert low - total < -30.0  # below 200 Hz too


def test_codec_quantises_to_256_levels():
    x = np.linspace(-0.9, 0.9, 5000).astype(np.float32)
    y = A.Augmenter(seed=0, **only("codec"))(x, SR)
    assert len(np.unique(y)) <= 256
    assert np.max(np.abs(y - x)) < 0.02  # mu-law: fine steps near 0, coarse near full scale


def test_reverb_keeps_level_and_smears_an_impulse():
    x = np.zeros(SR, dtype=np.float32)
    x[1000] = 0.5
    augmenter = A.Augmenter(seed=0, **only("reverb", rt60_s=(0.5, 0.5)))
    y = augmenter(x, SR)
    assert np.count_nonzero(np.abs(y[1100:]) > 1e-4) > 1000  # a decaying tail
    assert abs(np.argmax(np.abs(y)) - 1000) < 5  # direct path first


def test_gain_and_rescaling_are_counted(clips):
    augmenter = A.Augmenter(seed=0, **only("gain", gain_db=(30.0, 30.0)))
    y = augmenter(clips[0], SR)
    assert np.abs(y).max() <= 1.0 and augmenter.counts["rescaled"] == 1
    quiet = A.Augmenter(seed=0, **only("gain", gain_db=(-6.0, -6.0)))(clips[0], SR)
    np.testing.assert_allclose(quiet, clips[0] * 10 ** (-6 / 20), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_and_dtype(clips, dtype):
    augmenter = A.Augmenter(
        seed=0, noise_prob=1.0, reverb_prob=1.0, telephone_prob=1.0, codec_prob=1.0, gain_prob=1.0
    )
    for x in (clips[0].astype(dtype), np.zeros(7, dtype=dtype), np.zeros(0, dtype=dtype)):
        y = augmenter(x, SR)
        assert y.dtype == np.float32 and y.shape == x.shape
        assert np.all(np.isfinite(y)) and np.abs(y).max(initial=0.0) <= 1.0


def test_deterministic_under_a_seed(clips):
    def run(seed):
        augmenter = A.Augmenter(seed=seed, noise_prob=0.8, reverb_prob=0.5, telephone_prob=0.3)
        return [augmenter(x, SR) for x in clips] + augmenter.augment_batch(clips, SR)

    first, again, other = run(7), run(7), run(8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


def test_keyed_draws_do_not_depend_on_order(clips):
    augmenter = A.Augmenter(seed=1, noise_prob=1.0, noise_types=("pink",))
    forward = [augmenter(x, SR, key=(0, i)) for i, x in enumerate(clips)]
    backward = [augmenter(x, SR, key=(0, i)) for i, x in reversed(list(enumerate(clips)))][::-1]
    for a, b in zip(forward, backward):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(forward[0], augmenter(clips[0], SR, key=(1, 0)))  # another epoch


def test_map_function_on_a_dataset(clips):
    import datasets

    ds = datasets.Dataset.from_dict(
        {"audio": [{"array": c, "sampling_rate": SR} for c in clips], "label": list(range(len(clips)))}
    ).cast_column("audio", datasets.Audio(sampling_rate=SR))
    augmenter = A.Augmenter(seed=0, **only("noise", noise_types=("babble",)))
    out = ds.map(augmenter.map_function(epoch=0), batched=True, batch_size=4, with_indices=True)
    again = ds.map(augmenter.map_function(epoch=0), batched=True, batch_size=4, with_indices=True)
    assert out["label"] == ds["label"]
    for a, b, x in zip(out["audio"], again["audio"], clips):
        y = np.asarray(a["array"])
        np.testing.assert_array_equal(y, np.asarray(b["array"]))
        assert y.shape == x.shape and not np.allclose(y, x, atol=1e-3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"snr_db": (20.0, 5.0)}, r"snr_db is a range .* write \(5.0, 20.0\)"),
        ({"noise_prob": 1.5}, r"noise_prob is a probability, in \[0, 1\]"),
        ({"gain_prob": -0.1}, r"gain_prob is a probability"),
        ({"rt60_s": (0.0, 0.5)}, r"rt60_s must be > 0"),
        ({"noise_types": ("pink", "crowd")}, r"noise_types must be a non-empty subset"),
        ({"babble_talkers": (0, 2)}, r"babble_talkers must be >= 1"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        A.Augmenter(**kwargs)


def test_bad_input_raises(clips):
    augmenter = A.Augmenter(seed=0)
    with pytest.raises(ValueError, match="needs 16000 Hz audio, found 44100 Hz"):
        augmenter(clips[0], 44_100)
    with pytest.raises(ValueError, match="16000 Hz audio"):
        A.telephone(clips[0], 8_000)
    A.Augmenter(seed=0, telephone_prob=0.0)(clips[0], 22_050)  # the other transforms work at any rate
    with pytest.raises(ValueError, match="mono 1-D"):
        augmenter(np.zeros((2, 100), dtype=np.float32), SR)
    with pytest.raises(ValueError, match="float waveform"):
        augmenter(np.zeros(100, dtype=np.int16), SR)
    with pytest.raises(ValueError, match="one key per clip"):
        augmenter.augment_batch(clips, SR, keys=[0])
    with pytest.raises(ValueError, match="either config= or"):
        A.Augmenter(A.AugmentConfig(), noise_prob=1.0)


def test_transform_function_gives_fresh_copies_on_each_read(clips):
    import datasets

    ds = datasets.Dataset.from_dict(
        {"audio": [{"array": c, "sampling_rate": SR} for c in clips]}
    ).cast_column("audio", datasets.Audio(sampling_rate=SR))

    def reads(seed):
        train = ds.with_transform(A.Augmenter(seed=seed, **only("noise")).transform_function())
        return [np.asarray(train[i]["audio"]["array"]) for i in (0, 0, 1)]

    first, again = reads(0), reads(0)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert first[0].shape == clips[0].shape and first[0].dtype == np.float32
    assert not np.array_equal(first[0], first[1])  # a new copy on every read
    assert not np.allclose(first[0], clips[0], atol=1e-3)


def test_fingerprint_names_the_copies():
    augmenter = A.Augmenter(seed=0)
    assert augmenter.fingerprint(0, 16) == A.Augmenter(seed=0).fingerprint(0, 16)
    names = {
        augmenter.fingerprint(0, 16),
        augmenter.fingerprint(1, 16),
        A.Augmenter(seed=1).fingerprint(0, 16),
        A.Augmenter(seed=0, noise_prob=0.9).fingerprint(0, 16),
        augmenter.fingerprint(0, 8),
    }
    assert len(names) == 5


def test_recipe_data_arguments_build_the_augment_config():
    """--augment_* options of every recipe (recipes/arguments.DataArguments) become one AugmentConfig."""
    from serhub.recipes.arguments import DataArguments

    args = DataArguments(
        augment=True, augment_snr_db=[0.0, 5.0], augment_noise_prob=1.0, augment_codec_prob=0.0
    )
    assert args.augment_config() == A.AugmentConfig(noise_prob=1.0, snr_db=(0.0, 5.0), codec_prob=0.0)
    assert DataArguments().augment_config() == A.AugmentConfig() and not DataArguments().augment
    with pytest.raises(ValueError, match=r"snr_db is a range .* write \(5.0, 20.0\)"):
        DataArguments(augment_snr_db=[20.0, 5.0])
    with pytest.raises(ValueError, match="--augment_copies must be at least 1"):
        DataArguments(augment_copies=0)
