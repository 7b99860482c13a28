"""recipes/ssl_classifier.py end to end on a tiny random Whisper encoder and a small synthetic set."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from serhub.recipes import ssl_classifier
from serhub.recipes.arguments import parse_arguments
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel, pipeline

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-whisper")
    torch.manual_seed(0)
    config = WhisperConfig(
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_layers=1,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        num_mel_bins=16,
        vocab_size=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=3,
    )
    WhisperModel(config).save_pretrained(path)
    WhisperFeatureExtractor(feature_size=16).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_dataset(synthetic_small, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "synthetic"
    synthetic_small.save_to_disk(str(path))
    return str(path)


def last_state(output_dir):
    checkpoints = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return json.loads((checkpoints[-1] / "trainer_state.json").read_text())


def recipe_args(encoder, dataset, output_dir, epochs=2):
    return [
        "--encoder_name_or_path", encoder,
        "--dataset_name_or_path", dataset,
        "--output_dir", str(output_dir),
        "--num_train_epochs", str(epochs),
        "--per_device_train_batch_size", "16",
        "--learning_rate", "5e-3",
        "--logging_steps", "1",
        "--bootstrap", "50", "--heldout_eval", "false",
        "--head_hidden_size", "32",
    ]  # fmt: skip


def test_default_config_is_the_embedded_offline_run():
    model_args, data_args, training_args = parse_arguments(
        (ssl_classifier.ModelArguments, ssl_classifier.DataArguments, ssl_classifier.TrainingArguments),
        ssl_classifier.DEFAULT_CONFIG,
        [],
    )
    assert model_args.encoder_name_or_path == "offline:whisper-tiny.en" and model_args.freeze_encoder
    assert data_args.dataset_name_or_path == "synthetic_emotions_v2" and data_args.cache_encoder_outputs
    assert training_args.metric_for_best_model == "macro_f1" and training_args.load_best_model_at_end


def test_recipe_trains_evaluates_writes_card_and_resumes(tiny_encoder, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    ssl_classifier.main(recipe_args(tiny_encoder, tiny_dataset, out))
    results = json.loads((out / "eval_results.json").read_text())
    assert results["world_size"] == 1 and len(results["epoch_seconds"]) == 2
    assert {"macro_f1", "unweighted_accuracy", "accuracy", "macro_f1_ci_low", "confusion_matrix"} <= set(
        results["test"]
    )
    assert "eval_macro_f1" in results["validation"]
    for png in ("confusion_matrix.png", "training_curves.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    card = (out / "README.md").read_text()
    assert "model-index" in card and f"value: {round(results['test']['macro_f1'], 4)}" in card
    # the folder is a self-contained checkpoint: the pipeline loads it with its remote code
    clf = pipeline("audio-classification", model=str(out), trust_remote_code=True)
    labels = {p["label"] for p in clf(torch.randn(16000).numpy() * 0.1, top_k=6)}
    assert labels == {"neutral", "happy", "sad", "angry", "fear", "surprise"}
    # the frozen encoder ran once, before training: its cache is on disk
    assert len(list((out / "encoder_cache").glob("*.arrow"))) == 3

    first_steps = last_state(out)["global_step"]
    capsys.readouterr()
    ssl_classifier.main(recipe_args(tiny_encoder, tiny_dataset, out, epochs=3))
    assert "resuming from" in capsys.readouterr().out
    assert last_state(out)["global_step"] == first_steps * 3 // 2  # continued from epoch 2, did not restart


def test_recipe_adds_heldout_voices_to_its_results_and_card(tiny_encoder, tiny_dataset, tmp_path):
    out = tmp_path / "run"
    ssl_classifier.main(
        recipe_args(tiny_encoder, tiny_dataset, out, epochs=1)
        + ["--heldout_eval", "true", "--heldout_clips_per_voice", "1"]
    )
    results = json.loads((out / "eval_results.json").read_text())
    heldout = results["heldout"]
    for condition in ("heldout_voices", "heldout_voices_telephone"):
        scores = heldout[condition]
        assert 0.0 <= scores["macro_f1_ci_low"] <= scores["macro_f1"] <= scores["macro_f1_ci_high"] <= 1.0
        assert scores["num_samples"] == len(scores["per_speaker_macro_f1"]) == 20  # one clip per voice
    card = (out / "README.md").read_text()
    assert "## Speech from voices and sentences it never heard" in card
    assert "name: synthetic_emotions_v2" in card and "split: heldout_voices_telephone" in card  # model-index
    assert f"| heldout_voices | 20 | {heldout['heldout_voices']['macro_f1']:.3f} |" in card
    # python -m serhub.heldout on the saved model gives the recipe's figures
    from serhub.heldout import main as heldout_main

    again = heldout_main(
        ["--models", str(out), "--clips_per_voice", "1", "--output_json", str(tmp_path / "h.json")]
    )
    assert again[str(out)] == {k: v for k, v in heldout.items() if k != "seconds"}
    assert json.loads((tmp_path / "h.json").read_text())["models"][str(out)] == again[str(out)]


def test_a_stopped_heldout_pass_loses_nothing_written_before(
    tiny_encoder, tiny_dataset, tmp_path, monkeypatch
):
    import serhub.heldout

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(serhub.heldout, "evaluate_heldout", stopped)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        ssl_classifier.main(
            recipe_args(tiny_encoder, tiny_dataset, out, epochs=1) + ["--heldout_eval", "true"]
        )
    results = json.loads((out / "eval_results.json").read_text())
    assert "macro_f1" in results["test"] and "heldout" not in results
    assert "model-index" in (out / "README.md").read_text()


@pytest.mark.parametrize("extra", [["--cache_encoder_outputs", "false"], ["--freeze_encoder", "false"]])
def test_recipe_without_the_encoder_cache(tiny_encoder, tiny_dataset, tmp_path, extra):
    """Fine-tuning the encoder (ABHINAYA S1) or a frozen one without the cache: raw audio each step."""
    out = tmp_path / "run"
    ssl_classifier.main(recipe_args(tiny_encoder, tiny_dataset, out, epochs=1) + extra)
    results = json.loads((out / "eval_results.json").read_text())
    assert results["encoder_cache_s"] == 0.0 and not (out / "encoder_cache").exists()
    assert 0.0 <= results["test"]["macro_f1"] <= 1.0 and len(results["epoch_seconds"]) == 1


def test_unknown_labels_in_the_data_are_refused(tiny_encoder, tiny_dataset, tmp_path):
    args = recipe_args(tiny_encoder, tiny_dataset, tmp_path / "x") + ["--labels", "neutral", "happy", "sad"]
    with pytest.raises(ValueError, match=r"labels the model does not know: \['angry', 'fear', 'surprise'\]"):
        ssl_classifier.main(args)


def test_missing_split_is_explained(tiny_encoder, tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match=r"splits \['dev'\] not in the dataset"):
        ssl_classifier.main(recipe_args(tiny_encoder, tiny_dataset, tmp_path / "x") + ["--eval_split", "dev"])


def test_two_process_ddp_on_cpu(tiny_encoder, tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "recipes/accelerate_configs/cpu_ddp.yaml"),
        str(REPO / "recipes/ssl_classifier.py"),
        *recipe_args(tiny_encoder, tiny_dataset, out, epochs=1),
        "--use_cpu", "true",  # TrainingArguments must know, or it treats the two ranks as two runs
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads((out / "eval_results.json").read_text())
    assert results["world_size"] == 2
    # 72 training clips, 16 per process and step: 3 steps with two processes (5 with one)
    assert last_state(out)["global_step"] == 3


@pytest.mark.parametrize("name", ["default", "abhinaya_s1_wavlm_large", "msp_podcast_baseline"])
def test_paper_configs_parse(name):
    path = REPO / "recipes/configs/ssl_classifier" / f"{name}.yaml"
    model_args, data_args, training_args = parse_arguments(
        (ssl_classifier.ModelArguments, ssl_classifier.DataArguments, ssl_classifier.TrainingArguments),
        path,
        ["--config", str(path), "--use_cpu", "true", "--bf16", "false"],
    )
    assert model_args.loss_type in ("weighted_ce", "focal")
    if name != "default":
        assert (
            not model_args.freeze_encoder
            and model_args.freeze_feature_encoder
            and not data_args.cache_encoder_outputs
        )


def prepared(encoder, dataset, output_dir, extra=()):
    """What ssl_classifier.main() builds before caching: arguments, model, feature extractor, splits."""
    from serhub.modeling import SpeechEmotionConfig, SpeechEmotionFeatureExtractor
    from serhub.modeling import SpeechEmotionForAudioClassification as Model
    from serhub.recipes.arguments import config_kwargs
    from serhub.recipes.data import load_dataset_dict, resolve_labels

    model_args, data_args, _, training_args = parse_arguments(
        ssl_classifier.ARGUMENTS,
        ssl_classifier.DEFAULT_CONFIG,
        recipe_args(encoder, dataset, output_dir) + list(extra),
    )
    raw = load_dataset_dict(dataset)
    labels = resolve_labels(raw, data_args)
    data = ssl_classifier.load_splits(data_args, training_args, raw, labels)
    model = Model.from_encoder_pretrained(encoder, labels, **config_kwargs(model_args, SpeechEmotionConfig))
    feature_extractor = SpeechEmotionFeatureExtractor.from_encoder_pretrained(encoder)
    return model, feature_extractor, model_args, data_args, training_args, data


def cached_states(ds):
    return [np.asarray(r["encoder_hidden_states"], dtype=np.float32) for r in ds]


AUGMENT = [
    "--augment",
    "true",
    "--augment_copies",
    "2",
    "--augment_noise_prob",
    "1.0",
    "--augment_snr_db",
    "0",
    "5",
]


def test_augmented_copies_are_cached_beside_the_clean_split_only_for_training(
    tiny_encoder, tiny_dataset, tmp_path
):
    clean, *_ = ssl_classifier.encoded_inputs(*prepared(tiny_encoder, tiny_dataset, tmp_path / "clean"))
    out = tmp_path / "augmented"
    augmented, *_ = ssl_classifier.encoded_inputs(*prepared(tiny_encoder, tiny_dataset, out, AUGMENT))
    n = len(clean["train"])
    assert len(augmented["train"]) == 3 * n  # the clean split and 2 copies
    clean_train, train = cached_states(clean["train"]), cached_states(augmented["train"])
    for a, b in zip(clean_train, train[:n]):  # the clean copy is the clean split
        np.testing.assert_array_equal(a, b)
    for copy in (1, 2):  # each augmented copy differs from the clean features, and from the other copy
        differs = [
            not np.allclose(a, b, atol=1e-2) for a, b in zip(clean_train, train[copy * n : (copy + 1) * n])
        ]
        assert np.mean(differs) > 0.9
    assert not np.array_equal(train[n], train[2 * n])
    assert list(augmented["train"]["labels"]) == 3 * list(clean["train"]["labels"])
    for split in ("validation", "test"):  # never augmented
        assert len(augmented[split]) == len(clean[split])
        for a, b in zip(cached_states(clean[split]), cached_states(augmented[split])):
            np.testing.assert_array_equal(a, b)
    # a re-run finds every cache (the augmented copies are fingerprinted): nothing is written again,
    # also from another run folder sharing the cache (--encoder_cache_dir)
    files = {p: p.stat().st_mtime_ns for p in (out / "encoder_cache").glob("*.arrow")}
    assert len(files) == 5
    again, *_ = ssl_classifier.encoded_inputs(*prepared(tiny_encoder, tiny_dataset, out, AUGMENT))
    assert {p: p.stat().st_mtime_ns for p in (out / "encoder_cache").glob("*.arrow")} == files
    shared = [*AUGMENT, "--encoder_cache_dir", str(out / "encoder_cache")]
    again, *_ = ssl_classifier.encoded_inputs(
        *prepared(tiny_encoder, tiny_dataset, tmp_path / "other", shared)
    )
    assert not (tmp_path / "other" / "encoder_cache").exists()
    assert {p: p.stat().st_mtime_ns for p in (out / "encoder_cache").glob("*.arrow")} == files
    for a, b in zip(train, cached_states(again["train"])):
        np.testing.assert_array_equal(a, b)


def test_augmented_raw_audio_is_fresh_on_every_read_of_the_training_split_only(
    tiny_encoder, tiny_dataset, tmp_path
):
    args = prepared(
        tiny_encoder, tiny_dataset, tmp_path / "raw", [*AUGMENT, "--cache_encoder_outputs", "false"]
    )
    data = args[-1]
    served, collator, seconds = ssl_classifier.encoded_inputs(*args)
    assert isinstance(collator, ssl_classifier.AudioCollator) and seconds == 0.0
    clean = np.asarray(data["train"][0]["audio"]["array"])
    first, second = (np.asarray(served["train"][0]["audio"]["array"]) for _ in range(2))
    assert first.shape == clean.shape and not np.allclose(first, clean, atol=1e-3)
    assert not np.array_equal(first, second)  # a new copy each epoch
    for split in ("validation", "test"):
        np.testing.assert_array_equal(
            np.asarray(served[split][0]["audio"]["array"]), np.asarray(data[split][0]["audio"]["array"])
        )


def test_speaker_statistics_and_normalising_collator():
    rng = np.random.default_rng(0)
    rows = [
        {"encoder_hidden_states": (rng.normal(size=(5 + i, 3, 4)) * (1 + s) + 10 * s).astype(np.float16),
         "speaker_id": f"s{s}", "labels": i % 2}
        for s in range(2) for i in range(3)
    ]  # fmt: skip
    stats = ssl_classifier.speaker_statistics(rows, "speaker_id")
    for s in ("s0", "s1"):
        frames = np.concatenate([r["encoder_hidden_states"] for r in rows if r["speaker_id"] == s]).astype(
            float
        )
        np.testing.assert_allclose(stats[s][0], frames.mean(axis=0))
        np.testing.assert_allclose(stats[s][1], frames.std(axis=0))
    batch = ssl_classifier.CachedEncoderCollator((), "speaker", stats)(rows)
    states, mask = batch["encoder_hidden_states"], batch["encoder_attention_mask"]  # B, L+1, T', D
    for s in range(2):  # each speaker's frames have mean 0, std 1 per layer and dimension
        frames = torch.cat([states[i].transpose(0, 1)[mask[i]] for i in range(3 * s, 3 * s + 3)])
        torch.testing.assert_close(frames.mean(0), torch.zeros(3, 4), atol=1e-5, rtol=0)
        torch.testing.assert_close(frames.std(0, unbiased=False), torch.ones(3, 4), atol=1e-4, rtol=0)
    per_recording = ssl_classifier.CachedEncoderCollator((), "recording")(rows)["encoder_hidden_states"]
    frames = per_recording[4].transpose(0, 1)[:6]  # row 4: 6 frames, then padding
    torch.testing.assert_close(frames.mean(0), torch.zeros(3, 4), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="no speaker statistics for 's1'"):
        ssl_classifier.CachedEncoderCollator((), "speaker", {"s0": stats["s0"]})(rows)


def test_recipe_with_speaker_norm_and_augment(tiny_encoder, tiny_dataset, tmp_path):
    out = tmp_path / "run"
    ssl_classifier.main(
        recipe_args(tiny_encoder, tiny_dataset, out, epochs=1)
        + ["--speaker_norm", "true", "--augment", "true", "--augment_copies", "1"]
    )
    results = json.loads((out / "eval_results.json").read_text())
    test = results["test"]
    assert test["speaker_normalisation"] == "per test speaker (transductive)"
    for scored in (test, test["per_recording"]):  # per test speaker, and each clip by its own statistics
        assert 0.0 <= scored["macro_f1"] <= 1.0 and "macro_f1_ci_low" in scored
        assert len(scored["per_speaker_macro_f1"]) == 3
    assert "transductive" in (out / "README.md").read_text()
    # benchmarks/heldout_speech.py scores such a model the recipe's way: the same test figure
    import importlib.util

    import datasets
    from serhub.metrics.ser_metrics.ser_metrics import classification_metrics

    spec = importlib.util.spec_from_file_location("heldout", REPO / "benchmarks/heldout_speech.py")
    heldout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(heldout)
    split = datasets.load_from_disk(tiny_dataset)["test"].cast_column(
        "audio", datasets.Audio(sampling_rate=16000)
    )
    audio = [np.asarray(a["array"], dtype=np.float32) for a in split["audio"]]
    predictions, names = heldout.speaker_normalised_predictions(str(out), audio, list(split["speaker_id"]), 8)
    references = [split.features["emotion"].names[e] for e in split["emotion"]]
    macro_f1 = classification_metrics(predictions, references, labels=names)["macro_f1"]
    assert macro_f1 == pytest.approx(test["macro_f1"], abs=0.02)  # float16 cache against float32 here
    assert json.loads((out / "config.json").read_text())["speaker_normalization"].startswith("encoder frames")
    # the model itself does it: each speaker enrolled on all their clips, then the pipeline answers as above
    from serhub.loading import load_classifier

    classifier = load_classifier(str(out))
    speakers = list(split["speaker_id"])
    enrolled = {}
    for speaker in sorted(set(speakers)):
        rows = [i for i, s in enumerate(speakers) if s == speaker]
        inputs = classifier.feature_extractor(
            [audio[i] for i in rows],
            sampling_rate=16000,
            return_tensors="pt",
            padding=True,
            return_attention_mask=True,
        )
        classifier.model.enroll_speaker(**inputs)
        for i, scores in zip(rows, classifier([audio[i] for i in rows], top_k=1)):
            enrolled[i] = scores[0]["label"]
    classifier.model.forget_speaker()
    assert [enrolled[i] for i in range(len(audio))] == predictions
    raw = [s[0]["label"] for s in classifier(audio[:4], top_k=1)]
    assert raw == [s[0]["label"] for s in load_classifier(str(out))(audio[:4], top_k=1)]  # forgotten
    # serhub evaluate --enroll_per_speaker: K clips per speaker enrol it (neutral first), the rest are scored
    from serhub.evaluate import evaluate_model

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "raw frames" warning with enrolment
        results, records = evaluate_model(
            str(out),
            tiny_dataset,
            "test",
            bootstrap=0,
            progress=False,
            classifier=classifier,
            enroll_per_speaker=1,
        )
    assert results["num_samples"] == len(audio) - 3 and len(records) == len(audio) - 3
    assert results["speaker_enrolment"] == {"clips_per_speaker": 1, "label": "neutral", "clips_left_out": 3}
    with pytest.raises(ValueError, match="leaves none to score"):
        evaluate_model(str(out), tiny_dataset, "test", bootstrap=0, progress=False, classifier=classifier,
                       enroll_per_speaker=len(audio))  # fmt: skip
    # --enroll_self: each speaker enrolled on their own clips' audio, every clip scored: as by hand above
    results, records = evaluate_model(
        str(out), tiny_dataset, "test", bootstrap=0, progress=False, classifier=classifier, enroll_self=True
    )
    assert results["num_samples"] == len(audio)
    assert results["speaker_enrolment"]["clips_per_speaker"] == "self"
    assert [r["prediction"] for r in records] == predictions
    with pytest.raises(ValueError, match="give one of them"):
        evaluate_model(str(out), tiny_dataset, "test", bootstrap=0, progress=False, classifier=classifier,
                       enroll_self=True, enroll_per_speaker=1)  # fmt: skip
    with pytest.raises(ValueError, match="--heldout_clips_per_voice must be above 2"):
        ssl_classifier.main(
            recipe_args(tiny_encoder, tiny_dataset, tmp_path / "few", epochs=1)
            + ["--speaker_norm", "true", "--heldout_eval", "true", "--heldout_clips_per_voice", "2"]
        )
    with pytest.raises(ValueError, match="needs --freeze_encoder true and --cache_encoder_outputs true"):
        ssl_classifier.main(
            recipe_args(tiny_encoder, tiny_dataset, tmp_path / "raw", epochs=1)
            + ["--speaker_norm", "true", "--cache_encoder_outputs", "false"]
        )


def test_recipe_with_speaker_prosody(tiny_encoder, tiny_dataset, tmp_path):
    """--speaker_prosody: the saved model measures each clip's prosody, reads it relative to the enrolled
    speaker's clips (the same reference the recipe trained with), and says what it needs when it lacks it."""
    import datasets
    from serhub.modeling.prosody import measure_prosody

    from serhub.evaluate import evaluate_model
    from serhub.loading import load_classifier

    out = tmp_path / "run"
    ssl_classifier.main(
        recipe_args(tiny_encoder, tiny_dataset, out, epochs=1) + ["--speaker_prosody", "true"]
    )
    config = json.loads((out / "config.json").read_text())
    assert config["speaker_prosody"] is True and "prosody" in config["speaker_normalization"]
    assert json.loads((out / "preprocessor_config.json").read_text())["return_prosody"] is True

    classifier = load_classifier(str(out))
    model, extractor = classifier.model.eval(), classifier.feature_extractor
    # the statistics the recipe set from the training split were saved with the model
    assert not torch.equal(model.prosody.std, torch.ones(10)) and torch.isfinite(model.prosody.fill).all()
    split = datasets.load_from_disk(tiny_dataset)["test"].cast_column(
        "audio", datasets.Audio(sampling_rate=16000)
    )
    speaker = split["speaker_id"][0]
    clips = [
        np.asarray(a["array"], dtype=np.float32)
        for a, s in zip(split["audio"], split["speaker_id"])
        if s == speaker
    ]
    inputs = extractor(clips, sampling_rate=16000, return_tensors="pt", padding=True)
    np.testing.assert_allclose(
        inputs["prosody_values"][1].numpy(), measure_prosody(clips[1]), rtol=1e-5, equal_nan=True
    )

    with torch.no_grad():
        plain = model(**inputs).logits
        model.enroll_speaker(**extractor(clips[:2], sampling_rate=16000, return_tensors="pt", padding=True))
        enrolled = model(**inputs).logits
        one = model(**extractor(clips[2:3], sampling_rate=16000, return_tensors="pt")).logits
        # enrolment is the mean of the reference clips' numbers: passing it explicitly gives the same
        reference = model.prosody.filled(inputs["prosody_values"][:2]).mean(0).expand(len(clips), 10)
        model.forget_speaker()
        explicit = model(**inputs, prosody_reference=reference).logits
    assert not torch.allclose(plain, enrolled)
    torch.testing.assert_close(enrolled, explicit)
    torch.testing.assert_close(one[0], enrolled[2], atol=1e-4, rtol=1e-4)  # batched == one clip alone
    with pytest.raises(ValueError, match="pass prosody_values"):
        model(input_features=inputs["input_features"], attention_mask=inputs["attention_mask"])
    with pytest.raises(ValueError, match="hold no voiced speech"):  # silence as the reference
        model.enroll_speaker(
            **extractor([np.zeros(16000, np.float32)], sampling_rate=16000, return_tensors="pt")
        )
    with pytest.raises(ValueError, match="needs the reference clips' prosody_values"):
        model.enroll_speaker(input_features=inputs["input_features"], attention_mask=inputs["attention_mask"])

    # the pipeline alone answers (relative to the training voices' average) and says how to do better
    assert len(classifier(clips[0], top_k=2)) == 2
    # serhub evaluate enrols each speaker on its neutral clips first, as the held-out pass does
    results, records = evaluate_model(str(out), tiny_dataset, "test", bootstrap=0, progress=False,
                                      classifier=classifier, enroll_per_speaker=1)  # fmt: skip
    assert results["num_samples"] == len(split) - 3 and results["speaker_enrolment"]["clips_per_speaker"] == 1
    with pytest.raises(ValueError, match="--speaker_prosody works on cached encoder outputs"):
        ssl_classifier.main(
            recipe_args(tiny_encoder, tiny_dataset, tmp_path / "raw", epochs=1)
            + ["--speaker_prosody", "true", "--cache_encoder_outputs", "false"]
        )


def test_prosody_reference_rows_are_neutral_first_and_keep_a_short_voice():
    """Each voice's reference: its first 2 clips, neutral first; a voice with one clip keeps it (the
    others still get 2: one short voice does not shrink every reference)."""
    from serhub.recipes.speaker_prosody import reference_rows

    speakers = ["a", "a", "a", "b", "c", "c"]
    labels = ["sad", "neutral", "happy", "sad", "happy", "sad"]
    assert reference_rows(speakers, labels, "neutral", 2).tolist() == [True, True, False, True, True, True]
    assert reference_rows(speakers, labels, None, 1).tolist() == [True, False, False, True, True, False]


def test_own_clips_reference_trains_what_self_enrolment_reads(tiny_encoder, tiny_dataset, tmp_path):
    """--speaker_reference own_clips: each voice's reference is the mean over its own clips (spread like
    --enroll_self's), so the recipe's test figure is what serhub evaluate --enroll_self gives the saved
    model; an unknown reference is refused before the folder is claimed."""
    from serhub.recipes.speaker_prosody import own_reference_rows

    from serhub.evaluate import evaluate_model
    from serhub.evaluate_data import self_enrolment_plan

    speakers = ["a", "b", "a", "b", "a", "c", "c"]
    rows = own_reference_rows(speakers)
    plan = self_enrolment_plan(speakers)
    assert sorted(np.flatnonzero(rows)) == sorted(i for reference, _ in plan.values() for i in reference)
    out = tmp_path / "own"
    ssl_classifier.main(
        recipe_args(tiny_encoder, tiny_dataset, out, epochs=1)
        + ["--speaker_prosody", "true", "--speaker_reference", "own_clips"]
    )
    test = json.loads((out / "eval_results.json").read_text())["test"]
    assert json.loads((out / "config.json").read_text())["speaker_reference"] == "own_clips"
    results, _ = evaluate_model(str(out), tiny_dataset, "test", bootstrap=0, progress=False, enroll_self=True)
    assert results["macro_f1"] == pytest.approx(test["macro_f1"], abs=0.02)  # float16 cache against float32
    with pytest.warns(UserWarning, match="Use --enroll_self to read it as it was trained"):
        evaluate_model(str(out), tiny_dataset, "test", bootstrap=0, progress=False, enroll_per_speaker=1)
    bad = tmp_path / "bad"
    with pytest.raises(ValueError, match="--speaker_reference is one of enrolled, own_clips"):
        ssl_classifier.main(
            recipe_args(tiny_encoder, tiny_dataset, bad, epochs=1) + ["--speaker_reference", "x"]
        )
    assert not bad.exists()
