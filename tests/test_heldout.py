"""serhub.heldout: the held-out speech every audio recipe can add to its report (--heldout_eval)."""

import numpy as np
import pytest


def test_telephone_with_noise_is_fixed_by_seed_and_index_at_15_db():
    from serhub.augment import telephone
    from serhub.heldout import telephone_with_noise

    t = np.arange(16000) / 16000
    speech = (0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    a, b = telephone_with_noise(speech, 0, 5), telephone_with_noise(speech, 0, 5)
    assert a.dtype == np.float32 and len(a) == len(speech)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, telephone_with_noise(speech, 0, 6))  # each clip its own noise
    assert not np.array_equal(a, telephone_with_noise(speech, 1, 5))
    banded = telephone(speech)
    noise = a - banded
    voiced = np.abs(speech) > 0  # the speech's active half
    snr = 10 * np.log10(np.mean(banded[voiced] ** 2) / np.mean(noise**2))
    assert 13.0 < snr < 17.0


def test_heldout_set_is_unseen_built_once_and_reused(monkeypatch):
    import datasets
    from serhub.datasets_scripts import synthetic_emotions as v1
    from serhub.datasets_scripts import synthetic_emotions_v2 as v2
    from serhub.datasets_scripts.synthetic_emotions_v2_banks import split_voices

    from serhub.heldout import CONDITIONS, heldout_dataset

    path = heldout_dataset(clips_per_voice=1, seed=0)
    data = datasets.load_from_disk(str(path))
    assert list(data) == list(CONDITIONS)
    clean, noisy = data[CONDITIONS[0]], data[CONDITIONS[1]]
    assert len(clean) == len(noisy) == len(split_voices(0)["heldout"])  # one clip per held-out voice
    assert clean["speaker_id"] == noisy["speaker_id"] and clean["emotion"] == noisy["emotion"]
    trained = {
        f"{voice}+{variant}"
        for split in ("train", "validation", "test")
        for voice, variant, _ in split_voices(0)[split]
    }
    trained |= {f"{voice}+{variant}" for voice, variant, _ in v1.SPEAKERS}
    assert not set(clean["speaker_id"]) & trained
    # the second use reads the folder: nothing is synthesised again
    monkeypatch.setattr(v2, "build", lambda *a, **k: pytest.fail("built twice"))
    assert heldout_dataset(clips_per_voice=1, seed=0) == path


def test_a_model_of_other_emotions_is_not_scored_and_text_recipes_refuse(tmp_path):
    from serhub.recipes.arguments import DataArguments
    from serhub.recipes.data import refuse_heldout

    from serhub.heldout import evaluate_heldout

    class Classifier:  # a pipeline whose model knows two other labels
        class model:
            class config:
                id2label = {0: "calm", 1: "excited"}

    scores = evaluate_heldout(tmp_path, clips_per_voice=1, classifier=Classifier())
    assert set(scores) == {"skipped"} and "cannot answer" in scores["skipped"]
    with pytest.raises(
        ValueError, match="--heldout_eval scores audio classifiers.*text_llm classifies transcripts"
    ):
        refuse_heldout(DataArguments(heldout_eval=True), "text_llm", "classifies transcripts")
    with pytest.raises(ValueError, match="--heldout_clips_per_voice must be at least 1"):
        DataArguments(heldout_clips_per_voice=0)
