"""Gradient accumulation is exact: one optimizer step over 4 micro-batches of 2 gives the gradients
and the logged loss of one step over a batch of 8, for every family the Trainer trains. (transformers
skips its division by the accumulation steps for models whose forward is said to accept loss kwargs;
serhub's forwards return their batch's mean and say so with ``accepts_loss_kwargs = False``.)"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import LABELS, make_parts  # noqa: E402
from test_speech_emotion import make  # noqa: E402


class GradientRecorder(TrainerCallback):
    """The summed gradients of every trainable parameter just before the (single) optimizer step."""

    def __init__(self):
        self.grads = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


class Rows(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def no_dropout(model):
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model


def one_step(build, rows, tmp_path, batch, accumulation, trainer_class=Trainer):
    torch.manual_seed(0)
    model = no_dropout(build())
    recorder = GradientRecorder()
    args = TrainingArguments(
        output_dir=str(tmp_path / f"b{batch}x{accumulation}"), per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation, max_steps=1, learning_rate=1e-3, logging_steps=1,
        max_grad_norm=0.0, use_cpu=True, report_to=[], save_strategy="no", seed=0, remove_unused_columns=False,
        dataloader_drop_last=True,
    )  # fmt: skip
    trainer = trainer_class(model=model, args=args, train_dataset=Rows(rows), callbacks=[recorder])
    trainer.train()
    loss = next(entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
    return recorder.grads, loss


def assert_same_step(build, rows, tmp_path, trainer_class=Trainer):
    grads_8, loss_8 = one_step(build, rows, tmp_path, 8, 1, trainer_class)
    grads_2x4, loss_2x4 = one_step(build, rows, tmp_path, 2, 4, trainer_class)
    assert grads_8 and grads_8.keys() == grads_2x4.keys()
    assert loss_2x4 == pytest.approx(loss_8, rel=1e-4)  # was 4x too large
    for name in grads_8:
        torch.testing.assert_close(grads_2x4[name], grads_8[name], rtol=1e-4, atol=1e-7, msg=name)


def test_speech_classifier(tmp_path):
    model, fe = make("whisper")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        features = fe(
            rng.standard_normal(16000).astype(np.float32) * 0.1, sampling_rate=16000, return_tensors="pt"
        )
        rows.append({**{k: v[0] for k, v in features.items()}, "labels": torch.tensor(i % 3)})
    assert_same_step(lambda: make("whisper")[0], rows, tmp_path)


@pytest.fixture(scope="module")
def audio_llm_parts(tmp_path_factory):
    return make_parts(tmp_path_factory.mktemp("parts"))


def _audio_llm(parts):
    from serhub.modeling import AudioLLMForConditionalGeneration

    torch.manual_seed(0)
    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        parts / "enc", parts / "llm", LABELS, connector="linear"
    )
    return model, processor


def _clips():
    rng = np.random.default_rng(1)
    return [rng.standard_normal(16000).astype(np.float32) * 0.1 for _ in range(8)]


def test_audio_llm_label_loss(audio_llm_parts, tmp_path):
    """SER-only prompts scored over the labels (the EmoSLLM default's phase 3)."""
    model, processor = _audio_llm(audio_llm_parts)
    inputs = processor(audio=_clips(), task="ser", prompt_index=0, shuffle_labels=False)
    rows = [{**{k: v[i] for k, v in inputs.items()}, "class_labels": torch.tensor(i % 4)} for i in range(8)]
    assert_same_step(lambda: _audio_llm(audio_llm_parts)[0], rows, tmp_path)


def test_audio_llm_joint_answers_lm_loss(audio_llm_parts, tmp_path):
    """ "| ASR: <t> | Emotion: <label>" answers with the LM loss, through serhub's own trainer
    (equal answer lengths per row, so each micro-batch's token mean weighs its rows alike)."""
    from serhub.recipes.audio_llm_common import AudioLLMTrainer

    model, processor = _audio_llm(audio_llm_parts)
    inputs = processor(
        audio=_clips(), task="asr+ser", labels=["happy"] * 8, transcripts=["hello there"] * 8,
        prompt_index=0, shuffle_labels=False, return_asr_mask=True,
    )  # fmt: skip
    rows = [{k: v[i] for k, v in inputs.items()} for i in range(8)]
    assert "asr_token_mask" in rows[0] and (rows[0]["labels"] != -100).sum() > 3
    assert_same_step(lambda: _audio_llm(audio_llm_parts)[0], rows, tmp_path, AudioLLMTrainer)


def test_text_llm_pooling_head(audio_llm_parts, tmp_path):
    from serhub.modeling import TextLLMForSequenceClassification

    def build():
        torch.manual_seed(0)
        return TextLLMForSequenceClassification.from_llm(
            audio_llm_parts / "llm", LABELS, classification_mode="pooling_head"
        )[0]

    model, tokenizer = TextLLMForSequenceClassification.from_llm(
        audio_llm_parts / "llm", LABELS, classification_mode="pooling_head"
    )
    texts = ["hello there", "please call me back", "i love this place", "the meeting is on thursday"] * 2
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    rows = [{**{k: v[i] for k, v in encoded.items()}, "labels": torch.tensor(i % 4)} for i in range(8)]
    assert_same_step(build, rows, tmp_path)
