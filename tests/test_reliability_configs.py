"""Probed faults in model configs, the metric and the recipes' boundary: each one is refused with a
message that says what was expected, what was found and how to fix it, before anything is written."""

import json
import math

import pytest
from serhub.metrics import load_ser_metrics
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics
from serhub.modeling import SpeechEmotionConfig
from serhub.modeling.configuration_audio_llm import AudioLLMConfig
from serhub.modeling.configuration_text_llm import TextLLMConfig
from serhub.recipes.run_folders import OutputDirError, claim_output_dir

LABELS = ["neutral", "happy", "sad", "angry"]
LLM_CONFIGS = [AudioLLMConfig, TextLLMConfig]


# ---------------------------------------------------------------------------- LLM configs


@pytest.mark.parametrize("config_class", LLM_CONFIGS)
def test_a_saved_id2label_in_another_order_than_labels_is_refused(config_class, tmp_path):
    config_class(labels=LABELS).save_pretrained(tmp_path)
    assert config_class.from_pretrained(tmp_path).id2label == dict(enumerate(LABELS))  # as saved: loads
    path = tmp_path / "config.json"
    saved = json.loads(path.read_text())
    saved["id2label"] = {"0": "neutral", "1": "sad", "2": "happy", "3": "angry"}  # happy and sad swapped
    path.write_text(json.dumps(saved))
    with pytest.raises(
        ValueError, match=r"id2label disagrees with labels at ids \[1, 2\].*order the model scores"
    ):
        config_class.from_pretrained(tmp_path)


@pytest.mark.parametrize("config_class", LLM_CONFIGS)
def test_a_label2id_that_is_not_the_inverse_is_refused(config_class):
    with pytest.raises(ValueError, match="label2id .* is not the inverse of id2label"):
        config_class(labels=["a", "b"], id2label={0: "a", 1: "b"}, label2id={"a": 1, "b": 0})


BAD_LLM_CONFIGS = [
    (dict(labels="sad"), "must be a list of label names.*found str 'sad'"),
    (dict(labels=["sad", "happy", "sad"]), "labels repeats 'sad' at positions 1, 3"),
    (dict(labels=["", "happy"]), "entry 1 is str ''; each label must be a non-empty name"),
    (dict(lora_r=-1), "lora_r is the LoRA rank, a whole number >= 0.*found -1"),
]
# the text LLM's config carries its classification loss; the audio-LLM's objective does (recipes/objectives.py)
BAD_TEXT_LLM_LOSSES = [
    (dict(loss_type="hinge"), r"loss_type must be one of \('ce'.*found 'hinge'"),
    (dict(labels=["a", "b"], class_counts=[1, 2, 3]), "class_counts has 3 entries but there are 2 labels"),
]


@pytest.mark.parametrize("config_class", LLM_CONFIGS)
@pytest.mark.parametrize(("kwargs", "message"), BAD_LLM_CONFIGS)
def test_bad_llm_config_values_are_refused(config_class, kwargs, message):
    with pytest.raises(ValueError, match=message):
        config_class(**kwargs)


@pytest.mark.parametrize(("kwargs", "message"), BAD_TEXT_LLM_LOSSES)
def test_bad_text_llm_losses_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TextLLMConfig(**kwargs)


def test_audio_llm_configs_saved_with_loss_settings_still_load(tmp_path):
    # configs written before the loss settings moved to the training objective carry them: dropped
    AudioLLMConfig(labels=LABELS).save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    saved = json.loads(path.read_text())
    path.write_text(
        json.dumps({**saved, "loss_type": "weighted_ce", "class_counts": [4, 3, 2, 1], "kl_weight": 0.1})
    )
    config = AudioLLMConfig.from_pretrained(tmp_path)
    assert (
        config.labels == LABELS and not hasattr(config, "class_counts") and not hasattr(config, "kl_weight")
    )
    assert "loss_type" not in config.to_dict()


@pytest.mark.parametrize("chunk", [0, -1.5])
def test_audio_llm_chunk_length_must_be_positive(chunk):
    with pytest.raises(ValueError, match=f"chunk_length_s must be > 0.*found {chunk}"):
        AudioLLMConfig(chunk_length_s=chunk)


def test_good_llm_configs_still_load():
    config = AudioLLMConfig(labels=LABELS, lora_r=0)
    assert config.id2label == dict(enumerate(LABELS)) and config.label2id == {
        n: i for i, n in enumerate(LABELS)
    }
    assert AudioLLMConfig().labels == [] and TextLLMConfig(labels=tuple(LABELS)).labels == LABELS


# ---------------------------------------------------------------------- speech-encoder classifier


def test_speech_emotion_label_ids_must_be_0_to_n_minus_1():
    with pytest.raises(ValueError, match=r"id2label ids must be 0..2 .*found \[0, 2, 5\]; renumber"):
        SpeechEmotionConfig(id2label={0: "a", 2: "b", 5: "c"})
    with pytest.raises(ValueError, match="id2label repeats 'a' at ids 0, 1"):
        SpeechEmotionConfig(id2label={0: "a", 1: "a"})


@pytest.mark.parametrize("name", ["head_hidden_size", "pooling_attention_size"])
@pytest.mark.parametrize("size", [-1, 0])
def test_speech_emotion_sizes_must_be_positive(name, size):
    with pytest.raises(ValueError, match=f"{name} must be a whole number >= 1.*found {size}"):
        SpeechEmotionConfig(**{name: size})


# -------------------------------------------------------------------------------------- metric


@pytest.fixture(scope="module")
def ser():
    return load_ser_metrics()


@pytest.mark.parametrize("via_evaluate", [False, True])
def test_ids_against_names_are_refused_naming_both_kinds(ser, via_evaluate):
    score = ser.compute if via_evaluate else classification_metrics
    with pytest.raises(
        ValueError, match=r"references are strings \('a', 'b'\) but the predictions are integers"
    ):
        score(predictions=[0, 1], references=["a", "b"])
    with pytest.raises(
        ValueError, match=r"labels are strings \('0', '1'\) but the predictions are integers \(0, 1\)"
    ):
        score(predictions=[0, 1], references=[0, 1], labels=["0", "1"])


@pytest.mark.parametrize("via_evaluate", [False, True])
def test_nan_predictions_or_references_are_refused(ser, via_evaluate):
    score = ser.compute if via_evaluate else classification_metrics
    with pytest.raises(ValueError, match=r"predictions has NaN at position\(s\) \[1\]"):
        score(predictions=[math.nan, 1.0], references=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"references has NaN at position\(s\) \[2\]"):
        classification_metrics(["a", "b"], ["a", float("nan")])


def test_unknown_labels_are_shown_with_repr():
    with pytest.raises(ValueError, match=r"not in the label set \['sad', 'happy'\]: 'bored'"):
        classification_metrics(["sad", "bored"], ["sad", "happy"], labels=["sad", "happy"])
    assert classification_metrics([1.0, 0.0], [1, 0])["accuracy"] == 1.0  # 1.0 and 1 are one class id


# ------------------------------------------------------------------------------------- recipes


@pytest.mark.parametrize(
    ("recipe", "args", "message"),
    [
        (
            "ssl_classifier",
            ["--learning_rate", "-1"],
            "--learning_rate must be a finite number > 0, found -1",
        ),
        (
            "ssl_classifier",
            ["--learning_rate", "nan"],
            "--learning_rate must be a finite number > 0, found nan",
        ),
        (
            "ssl_classifier",
            ["--per_device_train_batch_size", "0"],
            "--per_device_train_batch_size must be .* >= 1",
        ),
        ("ssl_classifier", ["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be"),
        ("ssl_classifier", ["--max_grad_norm", "nan"], "--max_grad_norm must be a finite number >= 0"),
        ("ssl_classifier", ["--weight_decay", "-0.1"], "--weight_decay must be a finite number >= 0"),
        ("ssl_classifier", ["--num_train_epochs", "inf"], "--num_train_epochs must be a finite number"),
        ("text_llm", ["--lora_learning_rate", "nan"], "--lora_learning_rate must be a finite number > 0"),
    ],
)
def test_bad_training_values_are_refused_before_anything_is_written(recipe, args, message, tmp_path):
    import importlib

    out = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        importlib.import_module(f"serhub.recipes.{recipe}").main([*args, "--output_dir", str(out)])
    assert list(tmp_path.iterdir()) == []  # no run folder, no lock, no cache: the fixed rerun is accepted


# --------------------------------------------------------------------------------- run folders


@pytest.mark.parametrize("place", ["/proc/serhub-x", "/sys/serhub-x"])
def test_an_unwritable_output_dir_is_not_reported_as_another_run(place):
    with pytest.raises(OutputDirError, match=r"is not writable \(creating the run's lock file") as err:
        claim_output_dir(place, "ssl_classifier", {"labels": ["a", "b"]})
    assert "another serhub run" not in str(err.value)
