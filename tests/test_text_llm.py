"""TextLLMForSequenceClassification and recipes/text_llm.py on a tiny random Llama with a chat
template: the prompt as the chat template writes it, SFT's loss on the answer only, label scores as
the LM's own likelihoods, save -> fresh-process reload, the text-classification pipeline, and both
training methods end to end."""

import json
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from serhub.modeling import TextLLMForSequenceClassification
from serhub.recipes import text_llm
from transformers import AutoTokenizer, pipeline

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import LABELS, make_llm, make_tokenizer  # noqa: E402

TEXTS = ["i love this place", "please call me back", "the meeting is on thursday", "hello there"]


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llm")
    tokenizer = make_tokenizer(path)
    make_llm(path, "llama", len(tokenizer))
    return path


@pytest.fixture(scope="module")
def text_dataset(tmp_path_factory):
    """Transcripts whose words give the label away, so a few steps can learn them."""
    rng = np.random.default_rng(0)
    words = {"neutral": "the meeting is on thursday", "happy": "i love this place",
             "sad": "please call me back", "angry": "hello there"}  # fmt: skip
    features = datasets.Features(
        {"transcript": datasets.Value("string"), "emotion": datasets.ClassLabel(names=LABELS)}
    )

    def split(n):
        labels = rng.integers(0, len(LABELS), n).tolist()
        return datasets.Dataset.from_dict(
            {"transcript": [words[LABELS[i]] for i in labels], "emotion": labels}, features=features
        )

    path = tmp_path_factory.mktemp("text-data") / "d"
    datasets.DatasetDict(train=split(48), validation=split(16), test=split(16)).save_to_disk(str(path))
    return str(path)


def test_prompt_is_the_chat_template_split_around_the_transcript(tiny_llm):
    model, tokenizer = TextLLMForSequenceClassification.from_llm(tiny_llm, LABELS)
    enc = tokenizer(TEXTS, return_tensors="pt", padding=True)
    ids, mask, _ = model.prompt_inputs(enc["input_ids"], enc["attention_mask"])
    for row, m, text in zip(ids.tolist(), mask.tolist(), TEXTS):
        content = "Here is the transcript of an utterance. What emotion does the speaker express? "
        content += f"Answer with one word from: {', '.join(LABELS)}.\n{text}"
        full = tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True
        )
        full = full["input_ids"] if isinstance(full, dict) or hasattr(full, "keys") else full
        assert [t for t, keep in zip(row, m) if keep] == list(full)


def test_label_scores_are_the_lms_likelihoods_and_batching_changes_nothing(tiny_llm):
    model, tokenizer = TextLLMForSequenceClassification.from_llm(tiny_llm, LABELS)
    enc = tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**enc).logits
        for i, text in enumerate(TEXTS):
            single = model(**tokenizer([text], return_tensors="pt")).logits
            assert torch.allclose(single, logits[i : i + 1], atol=1e-4)
        # the log-likelihood of each label's tokens after the full prompt, from the LM directly
        ids, mask, _ = model.prompt_inputs(enc["input_ids"][:1], enc["attention_mask"][:1])
        prompt = ids[0][mask[0].bool()].tolist()
        for c, label_ids in enumerate(model.config.prompt["label_token_ids"]):
            seq = torch.tensor([prompt + label_ids])
            logp = model.language_model(input_ids=seq).logits[0].log_softmax(-1)
            expected = sum(logp[len(prompt) - 1 + j, t] for j, t in enumerate(label_ids))
            assert logits[0, c].item() == pytest.approx(expected.item(), abs=1e-4)
    probabilities = logits.softmax(-1)
    assert torch.allclose(probabilities.sum(-1), torch.ones(len(TEXTS)))


@pytest.mark.parametrize("mode", ["label_logits", "pooling_head"])
def test_save_reload_in_a_fresh_process_and_pipeline(tiny_llm, tmp_path, mode):
    model, tokenizer = TextLLMForSequenceClassification.from_llm(tiny_llm, LABELS, classification_mode=mode)
    model.enable_lora()
    with torch.no_grad():  # move the adapters and the head off their initial values
        for _name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    model.merge_and_unload_lora()
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    enc = tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = model(**enc).logits.numpy()
    script = f"""
import numpy as np, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
m = AutoModelForSequenceClassification.from_pretrained({str(tmp_path / "m")!r}, trust_remote_code=True)
t = AutoTokenizer.from_pretrained({str(tmp_path / "m")!r})
with torch.no_grad():
    np.save({str(tmp_path / "out.npy")!r}, m(**t({TEXTS!r}, return_tensors="pt", padding=True)).logits.numpy())
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    assert np.allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)
    classifier = pipeline("text-classification", model=str(tmp_path / "m"), trust_remote_code=True)
    scores = classifier(TEXTS[0], top_k=None)
    assert {s["label"] for s in scores} == set(LABELS)
    assert sum(s["score"] for s in scores) == pytest.approx(1.0, abs=1e-5)
    assert scores[0]["label"] == LABELS[int(expected[0].argmax())]


def test_sft_puts_the_loss_on_the_answer_only(tiny_llm, text_dataset):
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = TextLLMForSequenceClassification.from_llm(tiny_llm, LABELS)
    args = text_llm.TextLLMArguments(text_model_name_or_path=str(tiny_llm))
    data = datasets.load_from_disk(text_dataset)["train"].rename_column("emotion", "labels")
    tokenized = text_llm.tokenize_split(data, tokenizer, args, model.config.prompt, LABELS, sft=True)
    trainer = SFTTrainer(
        model=model.language_model,
        args=SFTConfig(
            output_dir="unused", completion_only_loss=True, bf16=False, report_to="none", max_length=None
        ),
        train_dataset=tokenized,
        processing_class=tokenizer,
    )
    for i in range(4):
        row = trainer.train_dataset[i]
        batch = trainer.data_collator([row])
        answer = [
            t for t, lab in zip(batch["input_ids"][0].tolist(), batch["labels"][0].tolist()) if lab != -100
        ]
        label = data[i]["labels"]
        assert answer == model.config.prompt["label_token_ids"][label] + model.config.prompt["end_ids"]


@pytest.mark.parametrize("method", ["sft", "pooling_head"])
def test_recipe_learns_and_saves_a_text_classifier(tiny_llm, text_dataset, tmp_path, method):
    out = tmp_path / method
    text_llm.main(
        [
            "--text_model_name_or_path", str(tiny_llm),
            "--dataset_name_or_path", text_dataset,
            "--method", method,
            "--output_dir", str(out),
            "--num_train_epochs", "6",
            "--learning_rate", "3e-2" if method == "sft" else "1e-2",
            "--gradient_checkpointing", "false",
            "--per_device_train_batch_size", "8",
            "--logging_steps", "6",
            "--bootstrap", "50",
            *(["--lora_learning_rate", "1e-3"] if method == "pooling_head" else []),
        ]
    )  # fmt: skip
    results = json.loads((out / "eval_results.json").read_text())
    assert results["method"] == method and "macro_f1_ci_low" in results["test"]
    if method == "pooling_head":  # the words give the label away; the head finds them in a few steps
        assert results["test"]["macro_f1"] > 0.4
    (checkpoint,) = out.glob("checkpoint-*")
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) >= 2 and losses[-1] < losses[0]
    if method == "pooling_head":  # the new head at --learning_rate, the LoRA adapters at their own rate
        groups = torch.load(checkpoint / "optimizer.pt", weights_only=True)["param_groups"]
        assert {g["initial_lr"] for g in groups} == {1e-2, 1e-3}
    # a random tiny LLM's SFT moves slowly (its LM loss falls, its answers stay noisy): the saved
    # classifier must give the same scores as the evaluation did
    classifier = pipeline("text-classification", model=str(out), trust_remote_code=True)
    data = datasets.load_from_disk(text_dataset)["test"]
    predicted = [r[0]["label"] for r in classifier(list(data["transcript"]), top_k=1)]
    truth = [LABELS[i] for i in data["emotion"]]
    accuracy = sum(p == t for p, t in zip(predicted, truth)) / len(truth)
    assert accuracy == pytest.approx(results["test"]["accuracy"], abs=1e-6)
    assert (out / "README.md").read_text().count("text-classification") >= 1
    assert AutoTokenizer.from_pretrained(out) is not None


def test_recipe_refuses_a_dataset_without_transcripts(tiny_llm, tmp_path):
    features = datasets.Features({"emotion": datasets.ClassLabel(names=LABELS)})
    d = datasets.Dataset.from_dict({"emotion": [0, 1]}, features=features)
    datasets.DatasetDict(train=d, validation=d, test=d).save_to_disk(str(tmp_path / "d"))
    with pytest.raises(ValueError, match="has no 'transcript' column"):
        text_llm.main(
            ["--text_model_name_or_path", str(tiny_llm), "--dataset_name_or_path", str(tmp_path / "d"),
             "--output_dir", str(tmp_path / "out")]
        )  # fmt: skip
    assert not (tmp_path / "out" / "eval_results.json").exists()


def test_zero_shot_scores_transcripts_without_training(tiny_llm, text_dataset, tmp_path):
    from serhub.recipes import zero_shot

    model, tokenizer = TextLLMForSequenceClassification.from_llm(tiny_llm, LABELS)
    probabilities = zero_shot.classify_transcripts(model, tokenizer, TEXTS, batch_size=3)
    assert probabilities.shape == (len(TEXTS), len(LABELS))
    assert torch.allclose(probabilities.sum(-1), torch.ones(len(TEXTS)))
    results = zero_shot.main(
        ["--model", str(tiny_llm), "--dataset_name_or_path", text_dataset, "--output_dir", str(tmp_path / "zs"),
         "--bootstrap", "20"]
    )  # fmt: skip
    assert set(results) == {"validation", "test"} and "macro_f1_ci_low" in results["test"]
    saved = json.loads((tmp_path / "zs" / "eval_results.json").read_text())
    assert saved["input"] == "transcript" and saved["test"]["macro_f1"] == results["test"]["macro_f1"]
    # the zero-shot classifier is saved as a text classifier (an ensemble member, a pipeline)
    classifier = pipeline("text-classification", model=str(tmp_path / "zs"), trust_remote_code=True)
    expected = model(**tokenizer([TEXTS[0]], return_tensors="pt")).logits.softmax(-1)[0]
    scores = {s["label"]: s["score"] for s in classifier(TEXTS[0], top_k=None)}
    assert [scores[label] for label in LABELS] == pytest.approx(expected.tolist(), abs=1e-5)


def test_lora_sweep_runs_each_point_once_and_tabulates(tiny_llm, text_dataset, tmp_path, monkeypatch):
    import csv

    from serhub.recipes import sweep

    common = ["--text_model_name_or_path", str(tiny_llm), "--dataset_name_or_path", text_dataset,
              "--method", "pooling_head", "--num_train_epochs", "2", "--learning_rate", "1e-2",
              "--gradient_checkpointing", "false", "--bootstrap", "20"]  # fmt: skip
    rows = sweep.main(["--recipe", "text_llm", "--output_dir", str(tmp_path / "sw"), "--grid", "lora_r=2,4",
                       "lora_alpha=8", "--", *common])  # fmt: skip
    assert [(r["lora_r"], r["lora_alpha"]) for r in rows] == [("2", "8"), ("4", "8")]
    table = list(csv.DictReader((tmp_path / "sw" / "sweep.csv").open()))
    assert len(table) == 2 and all(0 <= float(r["test_macro_f1"]) <= 1 and r["test_ci_low"] for r in table)
    assert (tmp_path / "sw" / "sweep.png").stat().st_size > 3000
    saved = json.loads((tmp_path / "sw" / "lora_r-4_lora_alpha-8" / "config.json").read_text())
    assert saved["lora_r"] == 4
    # a re-run finds every point finished and trains nothing
    calls = []
    monkeypatch.setattr(text_llm, "main", lambda argv: calls.append(argv))
    again = sweep.main(["--recipe", "text_llm", "--output_dir", str(tmp_path / "sw"), "--grid", "lora_r=2,4",
                        "lora_alpha=8", "--", *common])  # fmt: skip
    assert calls == [] and [r["test_macro_f1"] for r in again] == [r["test_macro_f1"] for r in rows]
    with pytest.raises(ValueError, match="both in the grid and after --"):
        sweep.main(["--recipe", "text_llm", "--output_dir", str(tmp_path / "x"), "--grid", "lora_r=2", "--",
                    "--lora_r", "4"])  # fmt: skip
    with pytest.raises(ValueError, match="key=v1,v2"):
        sweep.main(["--recipe", "text_llm", "--output_dir", str(tmp_path / "x"), "--grid", "lora_r"])


def test_the_cpu_t2_config_trains_the_head_and_the_adapters_at_their_own_rates():
    from serhub.recipes.arguments import parse_arguments

    path = Path(text_llm.__file__).parent / "configs" / "text_llm" / "abhinaya_t2.yaml"
    model_args, *_, training_args = parse_arguments(
        text_llm.ARGUMENTS, path, ["--config", str(path), "--use_cpu", "true", "--bf16", "false"]
    )
    assert model_args.method == "pooling_head" and model_args.lora_learning_rate == 1e-4
    assert training_args.learning_rate == 1e-3 and training_args.lr_scheduler_type == "constant"
