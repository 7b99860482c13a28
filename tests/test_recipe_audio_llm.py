"""recipes/emosllm.py and recipes/whisper_llm.py end to end on tiny random parts."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from serhub.modeling import AudioLLMForAudioClassification, AudioLLMProcessor
from serhub.modeling.losses import build_classification_loss
from serhub.recipes import emosllm, whisper_llm
from serhub.recipes.audio_llm_common import AudioLLMTrainer, CachedAudioLLMCollator
from serhub.recipes.objectives import AudioLLMObjective, anneal, answer_window, labels_sharing_first_token
from transformers import pipeline

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import make_encoder, make_llm, make_tokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, synthetic_small):
    root = tmp_path_factory.mktemp("tiny-audio-llm")
    tokenizer = make_tokenizer(root / "llm")
    make_llm(root / "llm", "llama", len(tokenizer) + 1)
    make_encoder(root / "enc", "whisper")
    synthetic_small.save_to_disk(str(root / "ser"))
    # a tiny ASR set: synthetic speech with its sentences as transcripts
    asr = datasets.DatasetDict(
        {
            "train": synthetic_small["train"].select(range(16)),
            "test": synthetic_small["test"].select(range(6)),
        }
    )
    asr.save_to_disk(str(root / "asr"))
    return root


def model_args(tiny):
    return [
        "--audio_model_name_or_path", str(tiny / "enc"),
        "--text_model_name_or_path", str(tiny / "llm"),
        "--dataset_name_or_path", str(tiny / "ser"),
        "--num_queries", "4", "--mapper_heads", "2", "--stack_factor", "2",
        "--per_device_train_batch_size", "8", "--bootstrap", "20", "--heldout_eval", "false",
    ]  # fmt: skip


def emosllm_args(tiny, out, steps=("2", "2", "3"), phases=("1", "2", "3")):
    return model_args(tiny) + [
        "--asr_dataset_name_or_path", str(tiny / "asr"),
        "--output_dir", str(out),
        "--phases", *phases,
        "--phase_max_steps", *steps,
        "--save_steps", "2",
        "--max_transcript_tokens", "6",
        "--max_ser_eval_samples", "12",
        "--max_asr_eval_samples", "6",
        "--logging_steps", "1",
    ]  # fmt: skip


def test_asr_weight_schedules():
    assert anneal(0.0, 1.0, 0.1, "linear") == 1.0 and anneal(1.0, 1.0, 0.1, "linear") == pytest.approx(0.1)
    values = [anneal(p / 10, 1.0, 0.1, "cosine") for p in range(11)]
    assert values[0] == pytest.approx(1.0) and values[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values, values[1:]))  # decreasing
    assert anneal(0.7, 0.5, 0.1, "constant") == 0.5
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        anneal(0.5, 1, 0, "step")
    assert anneal(0.5, 1.0, 1e-4, "exponential") == pytest.approx(1e-2)  # the KL beta's, evenly in log space


def test_weighted_joint_loss(tiny):
    from serhub.modeling import AudioLLMForConditionalGeneration

    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        tiny / "enc", tiny / "llm", ["neutral", "happy", "sad"], num_queries=4, mapper_heads=2
    )
    model.eval()  # in training mode every forward would also update the mapper's frame statistics
    rows = [
        {
            "encoder_hidden_states": np.random.default_rng(i).standard_normal((10, 32)).astype(np.float16),
            "labels": i % 3,
            "transcript": "hello there",
        }
        for i in range(3)
    ]
    batch = CachedAudioLLMCollator(processor, "asr+ser", ["neutral", "happy", "sad"], seed=0)(rows)
    assert (
        batch["asr_token_mask"].sum() > 0
        and (batch["asr_token_mask"].bool() & (batch["labels"] == -100)).sum() == 0
    )

    def loss_at(weight, batch=batch):
        return AudioLLMObjective(asr_weight=weight)(model, batch).item()

    with torch.no_grad():
        plain = model(**{k: v for k, v in batch.items() if k != "asr_token_mask"}).loss.item()
        assert loss_at(1.0) == pytest.approx(plain, rel=1e-5)  # weight 1: the ordinary LM loss
        labels = batch["labels"].clone()
        labels[batch["asr_token_mask"].bool()] = -100  # weight 0: only the emotion tokens count
        emotion_only = model(
            **{**{k: v for k, v in batch.items() if k != "asr_token_mask"}, "labels": labels}
        ).loss.item()
        assert loss_at(0.0) == pytest.approx(emotion_only, rel=1e-5)

    # ser_only_fraction: that share of phase-3 batches asks for the emotion alone (no transcript)
    labels = ["neutral", "happy", "sad"]
    collator = CachedAudioLLMCollator(processor, "asr+ser", labels, seed=0, ser_only_fraction=0.5)
    # the choice is drawn per batch from its content (so a resumed run repeats it): vary the batches
    variants = [
        [{**r, "encoder_hidden_states": r["encoder_hidden_states"] + np.float16(k)} for r in rows]
        for k in range(40)
    ]
    batches = [collator(v) for v in variants]
    ser_only = [b for b in batches if b["asr_token_mask"].sum() == 0]
    again = collator(variants[0])  # the same batch again: the same prompt and task
    assert torch.equal(again["input_ids"], batches[0]["input_ids"])
    assert 8 <= len(ser_only) <= 32  # both kinds occur, about half each
    answer = ser_only[0]["labels"][0][ser_only[0]["labels"][0] != -100]
    assert "| ASR:" not in processor.tokenizer.decode(answer)
    assert processor.tokenizer.decode(answer).strip().startswith(labels[0])  # row 0 is "neutral"
    with torch.no_grad():  # a SER-only batch's loss is the emotion tokens' alone, whatever the ASR weight
        assert loss_at(0.3) != pytest.approx(loss_at(1.0))  # a joint batch depends on it
        assert loss_at(0.3, ser_only[0]) == pytest.approx(loss_at(1.0, ser_only[0]), rel=1e-6)


def test_label_ce_objective_for_ser_only_batches(tiny):
    from serhub.modeling import AudioLLMForConditionalGeneration

    labels = ["neutral", "happy", "sad"]
    torch.manual_seed(0)
    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        tiny / "enc", tiny / "llm", labels, num_queries=4, mapper_heads=2
    )
    model.eval()
    # class-weighted, as the recipe's loss_type and phase 3's training-split counts set it
    weighted = AudioLLMObjective(classification_loss=build_classification_loss("weighted_ce", [6, 2, 1]))
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    rows = []
    for i, y in enumerate(targets.tolist()):  # cached encoder outputs with a class signal
        states = np.random.default_rng(i).standard_normal((10, 32)).astype(np.float32)
        states[:, y * 8] += 3.0
        rows.append(
            {"encoder_hidden_states": states.astype(np.float16), "labels": y, "transcript": "hi there"}
        )
    collator = CachedAudioLLMCollator(
        processor, "asr+ser", labels, seed=0, ser_only_fraction=1.0, ser_only_objective="label_ce"
    )
    batch = collator(rows)
    # the prompt alone (nothing to imitate) and the class ids: the classifier's label_logits inputs
    assert "labels" not in batch and "asr_token_mask" not in batch
    assert torch.equal(batch["class_labels"], targets)
    evaluation = CachedAudioLLMCollator(processor, "ser", labels, with_answers=False)
    assert batch["input_ids"].shape[1] == evaluation(rows)["input_ids"].shape[1]
    with torch.no_grad():
        out = model(**batch)
        clf = model.as_classifier("label_logits")
        inputs = {k: v for k, v in batch.items() if k != "class_labels"}
        expected = clf(**inputs, labels=batch["class_labels"])
        loss, outputs = weighted(model, batch, return_outputs=True)
        head_loss = weighted(clf, {**inputs, "labels": batch["class_labels"]})
    # the scores over the labels alone: what the label_logits classifier reads; the model's own
    # loss is plain cross-entropy, the objective's class-weighted, for both heads
    assert out.logits.shape == (6, 3)
    torch.testing.assert_close(out.logits, expected.logits)
    torch.testing.assert_close(out.loss, expected.loss)
    unweighted = torch.nn.functional.cross_entropy(out.logits, targets)
    torch.testing.assert_close(out.loss, unweighted)
    torch.testing.assert_close(outputs.logits, out.logits)
    torch.testing.assert_close(loss, head_loss)
    assert loss.item() != pytest.approx(unweighted.item(), rel=1e-3)
    expected_weighted = torch.nn.functional.cross_entropy(
        out.logits, targets, weight=build_classification_loss("weighted_ce", [6, 2, 1]).weight
    )
    torch.testing.assert_close(loss, expected_weighted)
    assert AudioLLMObjective()(model, batch).item() == pytest.approx(unweighted.item(), rel=1e-6)
    # the objective trains: a few steps on the connector and the (tiny) LLM lower it
    model.train()
    opt = torch.optim.Adam([*model.connector.parameters(), *model.language_model.parameters()], lr=1e-2)
    losses = []
    for _ in range(15):
        loss = weighted(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    with pytest.raises(ValueError, match="ser_only_objective"):
        CachedAudioLLMCollator(processor, "asr+ser", labels, ser_only_objective="focal")
    with pytest.raises(ValueError, match="without labels"):
        model(**batch, labels=torch.zeros_like(batch["input_ids"]))


def test_joint_label_loss_scores_the_answers_label(tiny):
    from serhub.modeling import AudioLLMForConditionalGeneration

    labels = ["neutral", "happy", "sad"]
    torch.manual_seed(0)
    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        tiny / "enc", tiny / "llm", labels, num_queries=4, mapper_heads=2
    )
    model.eval()
    weighted = build_classification_loss("weighted_ce", [6, 2, 1])
    targets = torch.tensor([0, 1, 2, 1])
    rows = [
        {
            "encoder_hidden_states": np.random.default_rng(i).standard_normal((10, 32)).astype(np.float16),
            "labels": int(y),
            "transcript": ["hello there", "please call me back", "hi", "i love this place"][i],
        }
        for i, y in enumerate(targets.tolist())
    ]
    collator = CachedAudioLLMCollator(processor, "asr+ser", labels, seed=0, joint_label_targets=True)
    batch = collator(rows)
    assert torch.equal(batch["joint_class_labels"], targets)
    first = [ids[0] for ids in processor.label_token_ids(after_prefix=True)]
    # each position is the row's label token in its answer (rows of different lengths, left padded)
    for row, pos, y in zip(batch["labels"], batch["joint_label_positions"], targets):
        assert row[pos].item() == first[y] and processor.tokenizer.decode(row[pos + 1 :]).strip() != ""
    # a batch without the targets is the plain joint batch
    plain = CachedAudioLLMCollator(processor, "asr+ser", labels, seed=0)(rows)
    assert "joint_class_labels" not in plain and torch.equal(plain["input_ids"], batch["input_ids"])

    def loss_at(weight):
        return AudioLLMObjective(joint_label_weight=weight, classification_loss=weighted)(model, batch).item()

    with torch.no_grad():
        lm = model(**{k: v for k, v in plain.items() if k != "asr_token_mask"}).loss.item()
        assert loss_at(0.0) == pytest.approx(lm, rel=1e-5)  # weight 0: EmoSLLM's LM loss alone
        # expected: class-weighted CE over the labels' log-probabilities where the answer's label is predicted
        logits = model(**{k: v for k, v in plain.items() if k not in ("asr_token_mask", "labels")}).logits
        at = logits[torch.arange(4), batch["joint_label_positions"] - 1].log_softmax(-1)[:, first]
        weights = torch.tensor([6.0, 2.0, 1.0]).reciprocal()
        ce = torch.nn.functional.cross_entropy(at, targets, weight=weights / weights.mean()).item()
        assert loss_at(0.5) == pytest.approx(lm + 0.5 * ce, rel=1e-4)
        # the LM head ran only over the answers' window (left padding: the rows' last positions)
        _, kept = AudioLLMObjective()(model, batch, return_outputs=True)
        start = int((batch["labels"] != -100).int().argmax(1).min())
        assert kept.logits.shape[1] == batch["labels"].shape[1] - start + 1 < batch["input_ids"].shape[1]
        assert answer_window(torch.full((2, 5), -100)) == 5  # no answer: every position
        assert labels_sharing_first_token(["sad", "happy", "surprise"], [[7], [8, 9], [7, 3]]) == [
            ["sad", "surprise"]
        ]
        # the direct readout, in the same forward: where each answer starts ("| ASR:"), the scores of the
        # labels' first tokens as label_logits reads them (the SER-only prompt's label ids)
        starts = (batch["labels"] != -100).int().argmax(1)
        assert all(
            processor.tokenizer.decode(row[s:][row[s:] != -100]).startswith("| ASR: ")
            for row, s in zip(batch["labels"], starts)
        )
        plain_first = [ids[0] for ids in model.config.prompt["label_token_ids"]]
        direct = logits[torch.arange(4), starts - 1].log_softmax(-1)[:, plain_first]
        ce_direct = torch.nn.functional.cross_entropy(direct, targets, weight=weights / weights.mean()).item()
        both = AudioLLMObjective(
            joint_label_weight=0.5, direct_label_weight=2.0, classification_loss=weighted
        )
        assert both(model, batch).item() == pytest.approx(lm + 0.5 * ce + 2.0 * ce_direct, rel=1e-4)
        # renormalised among the labels, it is blind to the LM's own target there: raising every label's
        # logit by one amount at the answer's start changes the LM loss and not the direct loss
        shifted = logits.clone()
        shifted[torch.arange(4), starts - 1, torch.tensor(plain_first)[:, None]] += 5.0
        objective = AudioLLMObjective(classification_loss=weighted)
        assert objective.direct_label_loss(model, shifted, batch["labels"], targets).item() == pytest.approx(
            ce_direct, rel=1e-4
        )
    with pytest.raises(ValueError, match="direct_label_weight"):
        AudioLLMObjective(direct_label_weight=-1.0)
    # labels whose first tokens after "| Emotion:" coincide cannot be scored this way: said at once
    processor.labels = ["happy", "happy_ish", "sad"]
    if len({ids[0] for ids in processor.label_token_ids(after_prefix=True)}) < 3:
        with pytest.raises(ValueError, match="share one"):
            CachedAudioLLMCollator(processor, "asr+ser", processor.labels, joint_label_targets=True)


def test_lora_and_prosody_learning_rates_have_their_own_optimizer_groups(tiny, tmp_path):
    from serhub.modeling import AudioLLMForConditionalGeneration
    from transformers import TrainingArguments

    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        tiny / "enc", tiny / "llm", ["neutral", "happy"], num_queries=4, mapper_heads=2, speaker_prosody=True
    )
    model.enable_lora()
    args = TrainingArguments(str(tmp_path), learning_rate=1e-3, report_to="none", use_cpu=True)
    trainable = {id(p): n for n, p in model.named_parameters() if p.requires_grad}

    def kind(name):
        return "lora" if "lora_" in name else "prosody" if name.startswith("prosody.") else "rest"

    for lora_lr, prosody_lr in ((None, None), (1e-4, None), (1e-4, 1e-2), (None, 1e-2)):
        trainer = AudioLLMTrainer(
            model=model, args=args, lora_learning_rate=lora_lr, prosody_learning_rate=prosody_lr
        )
        groups = trainer.create_optimizer().param_groups
        seen = [id(p) for g in groups for p in g["params"]]
        assert sorted(seen) == sorted(trainable)  # every trainable weight once, nothing else
        expected = {"lora": lora_lr or 1e-3, "prosody": prosody_lr or 1e-3, "rest": 1e-3}
        for g in groups:
            kinds = {kind(trainable[id(p)]) for p in g["params"]}
            if lora_lr is None and prosody_lr is None:  # the stock optimizer: one rate for all
                assert g["lr"] == pytest.approx(1e-3)
                continue
            for k in kinds:
                assert g["lr"] == pytest.approx(expected[k]), (k, g["lr"])
        assert {kind(n) for n in trainable.values()} == {"lora", "prosody", "rest"}


def test_collapse_warning_is_for_the_query_pooling_mapper_alone(tiny, caplog):
    from serhub.modeling import AudioLLMForConditionalGeneration
    from serhub.recipes.audio_llm_common import audio_token_check

    labels = ["neutral", "happy"]
    same = np.random.default_rng(0).standard_normal((10, 32)).astype(np.float16)
    rows = [{"encoder_hidden_states": same, "labels": i % 2, "transcript": "hi"} for i in range(4)]
    for connector, warns in (("query_pooling", True), ("linear", False)):
        model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
            tiny / "enc",
            tiny / "llm",
            labels,
            connector=connector,
            num_queries=4,
            mapper_heads=2,
            stack_factor=2,
        )
        caplog.clear()
        with caplog.at_level("WARNING", logger="serhub"):
            stats = audio_token_check(model.eval(), processor, rows, labels)
        # identical clips give identical tokens with either connector; only the mapper's reading
        # means a collapse (a linear projector's clip means share the encoder's common component)
        assert stats["token_diversity"] < 1e-3
        assert ("collapsed" in caplog.text) == warns, connector


def test_emosllm_curriculum_end_to_end(tiny, tmp_path, capsys):
    out = tmp_path / "emo"
    # transcript-conditioned scoring during training is opt-in (the default config scores label_logits only)
    # an empty system turn and trimmed silences (the default config's token savings) reach the saved model
    fewer_tokens = ["--system_prompt", "", "--trim_silence_db", "35", "--trim_noise_margin_db", "10"]
    emosllm.main(emosllm_args(tiny, out) + fewer_tokens + ["--eval_transcript_conditioned", "true"])
    log = capsys.readouterr().out
    for phase in (1, 2, 3):
        done = json.loads((out / f"phase{phase}" / "stage_done.json").read_text())
        assert any("eval_wer" in h for h in done["log_history"])  # every phase reports WER
    phase3 = json.loads((out / "phase3" / "stage_done.json").read_text())["log_history"]
    assert any(
        "eval_label_logits_macro_f1" in h and "eval_transcript_conditioned_macro_f1" in h for h in phase3
    )
    assert [h["asr_weight"] for h in phase3 if "asr_weight" in h]  # the schedule is logged
    # phase 1 trains the mapper only; LoRA joins in phase 2
    assert "phase 1: trainable parameters: 27," in log or "phase 1: trainable" in log
    assert not any(".lora_" in k for k in _trainable_keys(out / "phase1"))
    assert any(".lora_" in k for k in _trainable_keys(out / "phase2"))
    # every phase trains the connector and LoRA only: no LLM or encoder weight was trained (and saved)
    for phase in (1, 2, 3):
        keys = _trainable_keys(out / f"phase{phase}")
        assert all(k.startswith("connector.") or ".lora_" in k for k in keys), (phase, keys[:3])
    phase3_line = next(line for line in log.splitlines() if "phase 3: trainable parameters" in line)
    phase2_line = next(line for line in log.splitlines() if "phase 2: trainable parameters" in line)
    assert (
        phase3_line.split("trainable parameters: ")[1].split(" of")[0]
        == phase2_line.split("trainable parameters: ")[1].split(" of")[0]
    )  # phase 3 (reloaded from phase 2) trains exactly what phase 2 trained
    results = json.loads((out / "eval_results.json").read_text())
    assert {
        "wer_heldout_asr",
        "label_logits",
        "transcript_conditioned",
        "text_only",
        "phase1_s",
        "phase3_s",
    } <= set(results)
    assert {"macro_f1", "macro_f1_ci_low", "confusion_matrix"} <= set(results["label_logits"])
    # WER on the held-out ASR split before training and at the end of every phase
    assert set(results["wer_by_phase"]) == {"before_training", "after_phase1", "after_phase2", "after_phase3"}
    # the final model's WER is the one measured at phase 3's end (same model, same clips): not generated twice
    assert results["wer_heldout_asr"] == results["wer_by_phase"]["after_phase3"]
    # the connector's health after each phase and at the end
    assert set(results["audio_tokens_by_phase"]) == {"after_phase1", "after_phase2", "after_phase3"}
    assert results["audio_tokens"]["token_diversity"] >= 0 and results["audio_tokens"]["token_norm_ratio"] > 0
    assert all(w >= 0 for w in results["wer_by_phase"].values())
    for name in ("confusion_matrix.png", "training_curves.png", "README.md", "model.safetensors"):
        assert (out / name).is_file()
    card = (out / "README.md").read_text()
    assert "model-index" in card
    # the card names what the saved feature extractor cuts and the system turn it was trained with
    assert "35 dB below the loudest frame, or less than 10 dB above the clip's noise floor" in card
    assert "| system turn | empty |" in card
    clf = pipeline("audio-classification", model=str(out), trust_remote_code=True)
    # the final model is self-contained: every weight of the model pipeline() runs is in its file
    # (it was once saved without the encoder, which then loaded as random weights)
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert set(f.keys()) == set(clf.model.state_dict())
    assert {r["label"] for r in clf(np.zeros(16000, dtype=np.float32) + 0.01, top_k=6)} == {
        "neutral",
        "happy",
        "sad",
        "angry",
        "fear",
        "surprise",
    }

    saved = AudioLLMProcessor.from_pretrained(out)
    assert saved.system_prompt == "" and saved.feature_extractor.trim_silence_db == 35
    assert saved.feature_extractor.trim_noise_margin_db == 10
    assert "<|im_start|>system\n<|im_end|>" in saved.tokenizer.decode(clf.model.config.prompt["input_ids"])
    quiet = np.zeros(16000, dtype=np.float32)
    speech = 0.1 * np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    hiss = 0.1 * 10 ** (-15 / 20) * np.random.default_rng(1).standard_normal(16000).astype(np.float32)
    frames = [
        int(saved.feature_extractor([clip], sampling_rate=16000)["attention_mask"].sum())
        for clip in (speech, np.concatenate([quiet, speech, quiet]), np.concatenate([hiss, speech, hiss]))
    ]
    # the saved model trims: 2 s of silence, or of noise 15 dB below the speech, would add ~200 frames
    assert frames[1] - frames[0] < 20 and frames[2] - frames[0] < 20

    # a finished run re-run: every phase is skipped, the evaluation is redone from phase 3's output
    emosllm.main(emosllm_args(tiny, out) + fewer_tokens)
    assert capsys.readouterr().out.count("already done") == 3


def _trainable_keys(folder):
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return list(f.keys())


def test_emosllm_phase_resumes_after_interruption(tiny, tmp_path, capsys):
    out = tmp_path / "emo"
    emosllm.main(emosllm_args(tiny, out, steps=("2",), phases=("1",)))
    # simulate a crash after the checkpoint at step 2: the phase never wrote its completion marker
    (out / "phase1" / "stage_done.json").unlink()
    capsys.readouterr()
    emosllm.main(emosllm_args(tiny, out, steps=("4",), phases=("1",)))
    log = capsys.readouterr().out
    assert "resuming phase 1 from" in log and "checkpoint-2" in log
    history = json.loads((out / "phase1" / "stage_done.json").read_text())["log_history"]
    assert max(h.get("step", 0) for h in history) == 4
    # the untrained model's WER, measured before the crash, is kept for the final report
    assert "WER before training" not in log
    assert json.loads((out / "phase1" / "wer_before_training.json").read_text())["wer"] >= 0


def test_phase_alone_starts_from_the_previous_output(tiny, tmp_path, capsys):
    out = tmp_path / "emo"
    # (with the label-restricted objective for phase 3's SER-only batches, and on the joint answers the
    # label losses of both readouts; labels renamed so that their first tokens differ in this tokenizer)
    ser = datasets.load_from_disk(str(tiny / "ser"))
    names = ["wonder" if n == "surprise" else n for n in ser["train"].features["emotion"].names]
    ser.cast_column("emotion", datasets.ClassLabel(names=names)).save_to_disk(str(tmp_path / "renamed"))
    label_ce = ["--ser_only_objective", "label_ce", "--ser_only_fraction", "0.5"]
    label_ce += ["--joint_label_weight", "1", "--direct_label_weight", "0.5"]
    label_ce += ["--dataset_name_or_path", str(tmp_path / "renamed")]
    label_ce += ["--lora_learning_rate", "1e-3", "--phase3_lora_learning_rate", "3e-4"]  # phase 3's own
    emosllm.main(emosllm_args(tiny, out, steps=("2", "2"), phases=("1", "2")) + label_ce)
    capsys.readouterr()
    emosllm.main(emosllm_args(tiny, out, steps=("2", "2", "2"), phases=("3",)) + label_ce)
    captured = capsys.readouterr()
    log = captured.out + captured.err
    card = (out / "README.md").read_text()
    assert (
        "1.0 x the label loss at their label (transcript_conditioned) and 0.5 x the label loss at their "
        "first token (label_logits)" in card
    )
    assert "| LoRA learning rate | 0.001 (phase 3: 0.0003) |" in card
    phases = emosllm.PHASES
    rates = emosllm.CurriculumArguments(lora_learning_rate=1e-3, phase3_lora_learning_rate=3e-4)
    assert [emosllm.phase_lora_learning_rate(rates, p) for p in phases] == [1e-3, 1e-3, 3e-4]
    assert (
        emosllm.phase_lora_learning_rate(emosllm.CurriculumArguments(lora_learning_rate=1e-3), phases[2])
        == 1e-3
    )
    # the label loss is weighted by the training split's class counts (the objective's, not the config's)
    train = datasets.load_from_disk(str(tmp_path / "renamed"))["train"]
    names = train.features["emotion"].names
    counts = {name: list(train["emotion"]).count(i) for i, name in enumerate(names)}
    assert f"label loss weighted_ce, class counts {counts}" in log
    assert "class_counts" not in json.loads((out / "config.json").read_text())
    assert "phase 3 starts from the pretrained parts" not in log and (out / "eval_results.json").is_file()
    # the parts reloaded from phase 2's checkpoint give the same cache keys: nothing was encoded twice
    names = [f.name.rsplit("-", 1)[0] for f in (out / "encoder_cache").glob("*.arrow")]
    assert names and len(names) == len(set(names)), sorted(names)
    # the WER record covers the phases an earlier run finished
    wer_by_phase = json.loads((out / "eval_results.json").read_text())["wer_by_phase"]
    assert set(wer_by_phase) == {"before_training", "after_phase1", "after_phase2", "after_phase3"}


def test_phase1_starts_from_a_ctc_aligned_connector(tiny, tmp_path, capsys):
    from safetensors.torch import load_file

    out = tmp_path / "ctc"
    args = emosllm_args(tiny, out, steps=("1",), phases=("1",)) + ["--ctc_alignment_steps", "4"]
    emosllm.main(args)
    record = json.loads((out / "phase0_ctc" / "ctc_done.json").read_text())
    assert record["log_history"][-1]["step"] == 4
    aligned = load_file(out / "phase0_ctc" / "connector.safetensors")
    assert set(aligned) == {"proj.weight", "proj.bias"}  # the linear projector's own weights
    # phase 1 redone: it starts again from the aligned connector, which is not aligned a second time
    (out / "phase1" / "stage_done.json").unlink()
    capsys.readouterr()
    emosllm.main(args)
    assert "already aligned" in capsys.readouterr().out
    assert json.loads((out / "phase0_ctc" / "ctc_done.json").read_text()) == record
    assert (out / "phase1" / "stage_done.json").is_file()


def test_extra_asr_data_joins_the_alignment_and_a_held_out_prompt_is_refused(tiny, tmp_path, capsys):
    from serhub.metrics.asr import normalize_text

    ser = datasets.load_from_disk(str(tiny / "ser"))
    asr = datasets.load_from_disk(str(tiny / "asr"))
    held_out = {normalize_text(t) for t in asr["test"]["transcript"]}
    leaky = tmp_path / "leaky"  # its training clips say the held-out ASR prompts
    ser.save_to_disk(str(leaky))
    args = emosllm_args(tiny, tmp_path / "run", steps=("1",), phases=("1",))
    with pytest.raises(ValueError, match="training clip.s. say a held-out ASR prompt"):
        emosllm.main(args + ["--asr_extra_datasets", str(leaky)])
    unseen = ser["train"].filter(lambda t: normalize_text(t) not in held_out, input_columns="transcript")
    extra = tmp_path / "extra"
    datasets.DatasetDict({"train": unseen.select(range(8))}).save_to_disk(str(extra))
    capsys.readouterr()
    emosllm.main(args + ["--asr_extra_datasets", str(extra), "--ctc_alignment_steps", "2"])
    assert "ASR training clips: 16 + 8 (24)" in capsys.readouterr().out


def test_emosllm_with_the_ctc_path_connector(tiny, tmp_path, capsys):
    from serhub.recipes.logs import run_main

    out = tmp_path / "ctc_path"
    args = emosllm_args(tiny, out, steps=("1", "1", "2")) + ["--connector", "ctc_path"]
    # its words come from the CTC head that phase 0 trains: refused without it, nothing written
    with pytest.raises(SystemExit) as exit_info:
        run_main(emosllm.main, args)
    assert exit_info.value.code == 2 and not out.exists()
    assert "--ctc_alignment_steps" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # copy rows need the words slots of the ctc_path connector
        run_main(emosllm.main, emosllm_args(tiny, out) + ["--ctc_copy_fraction", "0.5"])
    assert "--ctc_copy_fraction fills the words slots" in capsys.readouterr().err and not out.exists()
    args += ["--ctc_alignment_steps", "3", "--ctc_alignment_data", "asr_train", "ser_train"]
    # phase 3's label loss at a joint answer's start scores each label by its first token: in this
    # tokenizer "sad" and "surprise" share theirs, which is said before anything runs
    with pytest.raises(SystemExit):
        run_main(emosllm.main, args + ["--direct_label_weight", "0.5"])
    assert "[['sad', 'surprise']] share one" in capsys.readouterr().err and not out.exists()
    emosllm.main(
        args
        + ["--ctc_copy_fraction", "0.5", "--ctc_sampled_tokens", "8"]  # a sampled softmax in phase 0
        + ["--heldout_eval", "true", "--heldout_clips_per_voice", "1"]
    )
    log = capsys.readouterr().out
    assert "3 steps on asr_train + ser_{train_split}" in log
    heldout = json.loads((out / "eval_results.json").read_text())["heldout"]  # through the pipeline
    assert heldout["heldout_voices_telephone"]["num_samples"] == 20
    assert "Speech from voices and sentences it never heard" in (out / "README.md").read_text()
    aligned = load_file(out / "phase0_ctc" / "connector.safetensors")
    assert {"proj.weight", "blank", "log_scale"} <= set(aligned) and any(
        k.startswith("voice.") for k in aligned
    )
    results = json.loads((out / "eval_results.json").read_text())
    assert set(results["wer_by_phase"]) >= {"after_phase1", "after_phase2", "after_phase3"}
    # the saved model answers through the pipeline, as every serhub classifier does
    classifier = pipeline("audio-classification", model=str(out), trust_remote_code=True)
    clip = datasets.load_from_disk(str(tiny / "ser"))["test"][0]["audio"]["array"]
    top = classifier(np.asarray(clip, dtype=np.float32), top_k=2)
    assert len(top) == 2 and {t["label"] for t in top} <= set(results["labels"])


def test_emosllm_phase1_under_two_process_ddp(tiny, tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "recipes/accelerate_configs/cpu_ddp.yaml"),
        str(REPO / "recipes/emosllm.py"),
        *emosllm_args(tiny, out, steps=("2",), phases=("1",)),
        "--use_cpu", "true",
    ]  # fmt: skip
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = [line for line in result.stdout.splitlines() if "weights checksum per rank" in line]
    assert len(lines) == 1, result.stdout[-2000:]  # logged once, by the main process
    checksums = json.loads(lines[0].split(": ", 1)[1])
    assert len(checksums) == 2 and checksums[0] == checksums[1]  # both ranks, same weights
    # the recipe's own warning (accelerate's "specify a different port" may appear when the port is taken)
    assert "the ranks' weights differ" not in result.stderr + result.stdout
    assert json.loads((out / "phase1" / "stage_done.json").read_text())["world_size"] == 2


def test_audio_llm_recipes_train_on_augmented_copies(tiny, tmp_path, capsys):
    """--augment: the emotion corpus's training split is encoded once clean and once per augmented
    copy, and the recipes train on both (emosllm through its staged runner, whisper_llm directly)."""
    out = tmp_path / "emo-augment"
    augment = ["--augment", "true", "--augment_copies", "1"]
    emosllm.main(emosllm_args(tiny, out, steps=("1",), phases=("1",)) + augment)
    log = capsys.readouterr().out
    train = len(datasets.load_from_disk(str(tiny / "ser"))["train"])
    assert f"ser_train: the clean clips and 1 augmented copies ({2 * train} clips)" in log
    assert list((out / "encoder_cache").glob("ser_train-augment0-*.arrow"))
    out = tmp_path / "wl-augment"
    whisper_llm.main(
        model_args(tiny) + ["--output_dir", str(out), "--max_steps", "1", "--connector", "linear", *augment]
    )
    assert f"train: the clean clips and 1 augmented copies ({2 * train} clips)" in capsys.readouterr().out
    assert list((out / "encoder_cache").glob("train-augment0-*.arrow"))


def test_audio_llm_recipes_share_an_encoder_cache(tiny, tmp_path):
    """--encoder_cache_dir: a second run (another connector, another recipe) finds the frozen
    encoder's outputs there and writes none of its own; the first run's files are left as they were."""
    shared = tmp_path / "shared-cache"
    first = tmp_path / "wl-first"
    common = model_args(tiny) + ["--max_steps", "1", "--encoder_cache_dir", str(shared)]
    whisper_llm.main(common + ["--output_dir", str(first), "--connector", "linear"])
    files = {p: p.stat().st_mtime_ns for p in shared.glob("*.arrow")}
    assert files and not (first / "encoder_cache").exists()
    second = tmp_path / "wl-second"
    whisper_llm.main(common + ["--output_dir", str(second), "--connector", "query_pooling"])
    assert {p: p.stat().st_mtime_ns for p in shared.glob("*.arrow")} == files
    assert not (second / "encoder_cache").exists()
    # the staged recipe keys the same way: its SER splits' outputs are new files beside the others
    out = tmp_path / "emo-shared"
    emosllm.main(emosllm_args(tiny, out, steps=("1",), phases=("1",)) + ["--encoder_cache_dir", str(shared)])
    assert not (out / "encoder_cache").exists()
    after = {p: p.stat().st_mtime_ns for p in shared.glob("*.arrow")}
    assert {p: after[p] for p in files} == files and any(p.name.startswith("ser_") for p in after)


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ("text_llm", "trains on transcripts"),
        ("zero_shot", "does not train"),
        ("ensemble", "does not train"),
        ("qwen2_audio_lora", "feeds the audio to TRL"),
        ("graph_fusion", "caches its frozen encoders"),
    ],
)
def test_recipes_that_cannot_augment_say_so(recipe, message, tmp_path, capsys):
    import importlib

    from serhub.recipes.logs import run_main

    module = importlib.import_module(f"serhub.recipes.{recipe}")
    out = tmp_path / recipe
    with pytest.raises(SystemExit) as exit_info:
        run_main(module.main, ["--output_dir", str(out), "--augment", "true"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and f"--augment: {recipe} {message}" in err[-1]
    assert "whisper_llm, emosllm" in err[-1] and not out.exists()


def test_whisper_llm_recipe(tiny, tmp_path):
    out = tmp_path / "wl"
    whisper_llm.main(
        model_args(tiny)
        + [
            "--output_dir",
            str(out),
            "--num_train_epochs",
            "2",
            "--connector",
            "linear",
            "--learning_rate",
            "1e-2",
        ]
    )
    results = json.loads((out / "eval_results.json").read_text())
    assert {"validation", "test", "encoder_cache_s", "epoch_seconds"} <= set(results)
    assert len(results["epoch_seconds"]) == 2
    # each test voice's macro-F1, and the lowest expected by chance (the recipe bootstraps)
    test_voices = set(datasets.load_from_disk(str(tiny / "ser"))["test"]["speaker_id"])
    assert set(results["test"]["per_speaker_macro_f1"]) == test_voices
    assert 0 <= results["test"]["per_speaker_chance"]["chance_lowest"] <= 1
    from safetensors import safe_open

    with safe_open(str(sorted(out.glob("checkpoint-*"))[-1] / "model.safetensors"), "pt") as f:
        assert all(k.startswith("connector.") for k in f.keys())  # only the projector trains
    clf = pipeline("audio-classification", model=str(out), trust_remote_code=True)
    assert len(clf(np.zeros(8000, dtype=np.float32) + 0.01, top_k=2)) == 2


def test_whisper_llm_st1_reads_the_transcript_with_the_audio(tiny, tmp_path):
    """ABHINAYA ST1: the transcript goes into the prompt; the saved model says what it needs."""
    from serhub.modeling import AudioLLMForAudioClassification, AudioLLMProcessor
    from serhub.recipes.audio_llm_common import CachedAudioLLMCollator

    out = tmp_path / "st1"
    whisper_llm.main(
        model_args(tiny)
        + [
            "--output_dir",
            str(out),
            "--num_train_epochs",
            "1",
            "--connector",
            "linear",
            "--transcript_in_prompt",
            "true",
        ]
    )
    results = json.loads((out / "eval_results.json").read_text())
    assert 0.0 <= results["test"]["macro_f1"] <= 1.0
    model = AudioLLMForAudioClassification.from_pretrained(out).eval()
    processor = AudioLLMProcessor.from_pretrained(out)
    assert model.config.prompt["reads_transcript"]
    clip = np.zeros(8000, dtype=np.float32) + 0.01
    with pytest.raises(ValueError, match="reads the transcript with the audio"):
        pipeline("audio-classification", model=str(out), trust_remote_code=True)(clip)
    # with the processor, the transcript's tokens are in the prompt and the scores come
    inputs = processor(
        audio=[clip], text=["please call me back"], task="ser", prompt_index=0, shuffle_labels=False
    )
    without = processor(audio=[clip], task="ser", prompt_index=0, shuffle_labels=False)
    assert inputs["input_ids"].shape[1] > without["input_ids"].shape[1]
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).logits).all()
    # the training collator puts each row's transcript in its prompt
    rows = [
        {
            "encoder_hidden_states": np.zeros((4, 8), np.float32),
            "labels": 0,
            "transcript": "please call me back",
        }
    ]
    batch = CachedAudioLLMCollator(
        processor, "ser", ["neutral"], class_targets=True, fixed_prompt=True, transcript_in_prompt=True
    )(rows)
    text_ids = processor.tokenizer("please call me back", add_special_tokens=False)["input_ids"]
    row = batch["input_ids"][0].tolist()
    assert any(row[i : i + len(text_ids)] == text_ids for i in range(len(row)))


def test_whisper_llm_stratified_cross_validation(tiny, tmp_path, capsys):
    out = tmp_path / "cv"
    whisper_llm.main(
        model_args(tiny)
        + ["--output_dir", str(out), "--num_train_epochs", "1", "--connector", "linear", "--num_folds", "2"]
    )
    cv = json.loads((out / "cross_validation.json").read_text())
    assert len(cv["folds"]) == 2 and all(0.0 <= f <= 1.0 for f in cv["folds"])
    assert cv["macro_f1_mean"] == pytest.approx(np.mean(cv["folds"])) and cv["macro_f1_std"] >= 0
    assert "2-fold macro-F1" in capsys.readouterr().out
    assert json.loads((out / "eval_results.json").read_text())["cross_validation"] == cv


@pytest.mark.parametrize("sampling", ["random", "group_by_length"])
def test_resumed_phase_equals_uninterrupted(tiny, tmp_path, sampling):
    """Killed after a checkpoint and resumed, a phase ends with the weights of an uninterrupted run
    (optimizer, scheduler, RNG, the connector's running statistics, the prompts drawn and, with
    batches grouped by length, their order)."""
    from safetensors.torch import load_file

    def run(out):
        emosllm.main(
            emosllm_args(tiny, out, steps=("2", "2", "4"), phases=("3",))
            + ["--save_total_limit", "3", "--ser_only_fraction", "0.5", "--train_sampling_strategy", sampling]
        )

    run(tmp_path / "a")
    run(tmp_path / "b")
    # kill b after its step-2 checkpoint: the later checkpoint and the phase's outputs never happened
    phase = tmp_path / "b" / "phase3"
    shutil.rmtree(phase / "checkpoint-4")
    for name in ("stage_done.json", "model.safetensors"):
        (phase / name).unlink()
    run(tmp_path / "b")
    expected = load_file(str(tmp_path / "a" / "phase3" / "model.safetensors"))
    resumed = load_file(str(phase / "model.safetensors"))
    assert set(resumed) == set(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(resumed[name], tensor, atol=1e-6, rtol=0, msg=name)


def test_length_grouped_batches_pad_less_and_repeat_per_epoch():
    from serhub.recipes.data import LengthGroupedSampler

    lengths = np.random.default_rng(0).integers(20, 400, 203)
    sampler = LengthGroupedSampler(lengths, batch_size=8, seed=3, group_batches=5)
    first = list(sampler)
    assert sorted(first) == list(range(203)) and first == list(sampler)  # every clip once, the same again
    sampler.set_epoch(1)
    assert sorted(list(sampler)) == list(range(203)) and list(sampler) != first  # another order next epoch

    def padded(order):  # frames a loader pays for, cutting the order into batches of 8
        return sum(8 * lengths[order[i : i + 8]].max() for i in range(0, len(order), 8))

    random = np.random.default_rng(1).permutation(203)
    assert padded(first) < 0.8 * padded(random)
    # the loader cuts the order into batches of 8: each batch is one group's neighbours (a short one last)
    batches = [first[i : i + 8] for i in range(0, 203, 8)]
    assert all(len(b) == 8 for b in batches[:-1]) and len(batches[-1]) == 203 % 8
    with pytest.raises(ValueError, match="batch_size and group_batches must be >= 1"):
        LengthGroupedSampler(lengths, batch_size=0)


def test_rerun_with_other_labels_is_refused(tiny, tmp_path):
    out = tmp_path / "emo"
    emosllm.main(emosllm_args(tiny, out, steps=("2",), phases=("1",)))
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ValueError, match=r"other settings \(changed: .*labels.*--overwrite_output_dir"):
        emosllm.main(
            emosllm_args(tiny, out, steps=("2",), phases=("1",))
            + ["--labels", "neutral", "happy", "sad", "angry", "fear", "surprise", "bored"]
        )
    assert sorted(p.name for p in out.iterdir()) == before


def test_recipe_model_arguments_default_to_the_config():
    """The audio-LLM recipes' model arguments are the config's architecture parameters under the same
    names (passed through by name, recipes.arguments.config_kwargs); their defaults must be the
    config's, or a recipe would train another model than AudioLLMConfig() describes."""
    import dataclasses
    import inspect

    from serhub.modeling import AudioLLMConfig
    from serhub.recipes.audio_llm_common import AudioLLMArguments

    parameters = inspect.signature(AudioLLMConfig.__init__).parameters
    shared = [f for f in dataclasses.fields(AudioLLMArguments) if f.name in parameters]
    assert len(shared) >= 15
    for f in shared:
        if f.name.endswith("_name_or_path"):
            continue  # the recipe names its offline parts; the config has no default backbone
        assert f.default == parameters[f.name].default, f"--{f.name}: {f.default!r} vs the config's"


def test_init_connector_starts_from_an_aligned_phase(tiny, tmp_path, capsys):
    """--init_connector: whisper_llm's projector starts as EmoSLLM's phase 1 left it (the weights and the
    frame statistics), the card says so, and a source of another shape is refused before anything runs."""
    from serhub.recipes.logs import run_main

    aligned = tmp_path / "emosllm"
    linear = ["--connector", "linear", "--projector_frame_norm", "global"]
    emosllm.main(emosllm_args(tiny, aligned, steps=("2",), phases=("1",)) + linear)
    source = load_file(aligned / "phase1" / "model.safetensors")
    assert {"connector.proj.weight", "connector.in_norm.running_mean"} <= set(source)

    out = tmp_path / "wl"
    args = model_args(tiny) + ["--output_dir", str(out), "--max_steps", "2"] + linear
    # lr 1e-9: the trained connector is the one it started from (a fresh one would differ)
    whisper_llm.main(args + ["--init_connector", str(aligned / "phase1"), "--learning_rate", "1e-9"])
    assert "connector initialised from" in capsys.readouterr().out
    final = load_file(out / "model.safetensors")
    for key in ("connector.proj.weight", "connector.proj.bias"):
        torch.testing.assert_close(final[key], source[key])
    assert f"| connector's start | {aligned / 'phase1'} |" in (out / "README.md").read_text()

    # refused at parse time, with what differs and nothing written: another frame normalisation,
    # another connector, a folder that is not one, a folder with pickled weights only
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    torch.save({"connector.proj.weight": torch.zeros(1)}, pickled / "pytorch_model.bin")
    fresh = tmp_path / "refused"
    cases = [
        (["--init_connector", str(aligned / "phase1"), "--projector_frame_norm", "none"], "projector_frame_norm='global'"),
        (["--init_connector", str(aligned / "phase1"), "--connector", "query_pooling"], "its connector is 'linear'"),
        (["--init_connector", str(tmp_path / "missing")], "no such folder"),
        (["--init_connector", str(pickled)], "only safetensors weights are read"),
    ]  # fmt: skip
    for extra, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            run_main(whisper_llm.main, model_args(tiny) + ["--output_dir", str(fresh)] + linear + extra)
        assert exit_info.value.code == 2 and not fresh.exists()
        assert message in capsys.readouterr().err


def test_init_connector_checks_the_backbones_and_every_tensor(tiny, tmp_path):
    """Same connector settings over another LLM, or a phase-0 file of other shapes: refused at build."""
    from serhub.recipes.audio_llm_common import AudioLLMArguments, build_model
    from serhub.recipes.connector_init import init_connector

    parts = dict(
        audio_model_name_or_path=str(tiny / "enc"), text_model_name_or_path=str(tiny / "llm"),
        connector="linear", stack_factor=2,
    )  # fmt: skip
    model, _ = build_model(AudioLLMArguments(**parts), ["neutral", "happy"])
    model.save_pretrained(tmp_path / "model")
    wide = tmp_path / "wide-llm"
    tokenizer = make_tokenizer(wide)
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(tiny / "llm")
    config.num_hidden_layers = 1
    AutoModelForCausalLM.from_config(config).save_pretrained(wide)
    del tokenizer
    other, _ = build_model(AudioLLMArguments(**{**parts, "text_model_name_or_path": str(wide)}), ["a", "b"])
    with pytest.raises(ValueError, match="its LLM is .*'num_hidden_layers': 2.*this run's is .*1"):
        init_connector(other, tmp_path / "model")
    # a phase-0 file (no config): the tensors' shapes decide
    from safetensors.torch import save_file

    phase0 = tmp_path / "phase0_ctc"
    phase0.mkdir()
    save_file(
        {"proj.weight": torch.zeros(3, 3), "proj.bias": torch.zeros(3)}, phase0 / "connector.safetensors"
    )
    with pytest.raises(ValueError, match=r"other shapes \['proj.bias: \(3,\) there"):
        init_connector(model, phase0)
    good = {k: v.clone() + 1 for k, v in model.connector.state_dict().items()}
    save_file(good, phase0 / "connector.safetensors")
    assert init_connector(model, phase0) == len(good)
    torch.testing.assert_close(model.connector.proj.weight, good["proj.weight"])


@pytest.mark.parametrize("recipe", ["whisper_llm", "emosllm"])
def test_speaker_prosody_in_the_audio_llm_recipes(recipe, tiny, tmp_path):
    """--speaker_prosody: the prosody MLP trains beside the connector, its statistics and weights are
    saved, the saved extractor measures prosody, the config asks for enrolment, the card says so."""
    out = tmp_path / recipe
    if recipe == "whisper_llm":
        args = model_args(tiny) + [
            "--output_dir",
            str(out),
            "--connector",
            "linear",
            "--learning_rate",
            "1e-2",
        ]
        main = whisper_llm.main
    else:
        args = emosllm_args(tiny, out, steps=("1", "1", "3"))
        main = emosllm.main
    main(args + ["--speaker_prosody", "true"])  # speakers: the corpus's speaker_id column
    clf = AudioLLMForAudioClassification.from_pretrained(out).eval()
    assert clf.prosody is not None and "--speaker_prosody" in clf.config.speaker_normalization
    assert float(clf.prosody.prosody.std.sum()) != 10.0  # the training split's statistics, not the defaults
    assert float(clf.prosody.out_proj.weight.detach().abs().sum()) > 0  # it trained (it starts at zero)
    assert "speaker prosody" in (out / "README.md").read_text()
    saved = json.loads((out / "processor_config.json").read_text())
    assert saved["feature_extractor"]["return_prosody"] is True
    pipe = pipeline("audio-classification", model=str(out), trust_remote_code=True)
    clip = np.sin(2 * np.pi * 150 * np.arange(8000) / 16000).astype(np.float32) * 0.3
    assert len(pipe(clip, top_k=2)) == 2
    # a corpus without the speaker column is refused before anything is written
    again = tmp_path / f"{recipe}-no-speakers"
    bad = [a if a != str(out) else str(again) for a in args]
    with pytest.raises(ValueError, match="needs each clip's speaker"):
        main(bad + ["--speaker_column", "nobody", "--speaker_prosody", "true"])
    assert not again.exists()


def test_the_card_names_each_departure_from_the_paper():
    from serhub.recipes.audio_llm_common import AudioLLMArguments
    from serhub.recipes.emosllm_report import paper_departures

    paper = emosllm.CurriculumArguments(ser_only_fraction=0.0)
    assert paper_departures(AudioLLMArguments(connector="query_pooling"), paper) == {}
    default = emosllm.CurriculumArguments(
        ser_only_fraction=0.5, ser_only_objective="label_ce", joint_label_weight=1.0, direct_label_weight=1.0
    )
    rows = paper_departures(AudioLLMArguments(connector="ctc_path"), default)["departures from the paper"]
    assert "beside the QPMapper's voice tokens (ctc_path)" in rows
    assert (
        "SER-only batches use a class-weighted CE" in rows and "joint answers add a class-weighted CE" in rows
    )
    linear = paper_departures(AudioLLMArguments(connector="linear"), paper)["departures from the paper"]
    assert linear.startswith("connector linear in place of EmoSLLM's QPMapper")
