"""CTC alignment of the connector to the LLM's embeddings (recipes/ctc_alignment.py): the loss is
finite on padded batches, goes down, and what it learns is decodable."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import LABELS, make_parts  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from serhub.modeling import AudioLLMForConditionalGeneration

    root = make_parts(tmp_path_factory.mktemp("parts"))
    torch.manual_seed(0)
    return AudioLLMForConditionalGeneration.from_pretrained_components(
        root / "enc", root / "llm", LABELS, connector="linear", stack_factor=2
    )


def _rows(n=4):
    rng = np.random.default_rng(0)
    texts = ["hello there", "please call me back", "i love this place", "the meeting is on thursday"]
    return [
        {
            "encoder_hidden_states": rng.standard_normal((30 + 6 * i, 32)).astype(np.float16),
            "transcript": texts[i % 4],
        }
        for i in range(n)
    ]


def test_padded_batch_gives_finite_gradients(tiny):
    from serhub.recipes.ctc_alignment import CTCEmbeddingHead, ctc_alignment_loss, ctc_targets, pad_rows

    model, processor = tiny
    head = CTCEmbeddingHead(model.get_input_embeddings().weight)
    rows = _rows()
    batch = pad_rows(rows)
    assert not batch["encoder_attention_mask"].all()  # ragged: padding tokens exist
    loss = ctc_alignment_loss(
        model, head, batch, ctc_targets(processor.tokenizer, [r["transcript"] for r in rows])
    )
    loss.backward()
    grads = [p.grad for p in [*model.connector.parameters(), *head.parameters()] if p.grad is not None]
    assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads)


def test_alignment_learns_and_decodes(tiny):
    from serhub.recipes.ctc_alignment import ctc_greedy_transcripts, pad_rows, train_ctc_alignment

    model, processor = tiny
    rows = _rows()
    before = model.connector.proj.weight.detach().clone()
    head, history = train_ctc_alignment(
        model, processor.tokenizer, rows, pad_rows, steps=120, batch_size=4, learning_rate=1e-2, log_every=20
    )
    assert history[-1]["ctc_loss"] < 0.5 * history[0]["ctc_loss"]
    assert not torch.equal(before, model.connector.proj.weight)  # the connector itself was trained
    decoded = ctc_greedy_transcripts(model, head, pad_rows(rows), processor.tokenizer)
    assert sum(d == r["transcript"] for d, r in zip(decoded, rows)) >= 3  # memorised the four clips


def test_a_vocabulary_of_every_token_gives_the_full_softmax_loss(tiny):
    """The sampled softmax's index mapping is exact: scoring every token by id is the plain loss."""
    from serhub.recipes.ctc_alignment import CTCEmbeddingHead, ctc_alignment_loss, ctc_targets, pad_rows

    model, processor = tiny
    head = CTCEmbeddingHead(model.get_input_embeddings().weight)
    rows = _rows()
    batch, targets = pad_rows(rows), ctc_targets(processor.tokenizer, [r["transcript"] for r in rows])
    full = ctc_alignment_loss(model, head, batch, targets)
    every = torch.arange(model.get_input_embeddings().weight.shape[0])
    torch.testing.assert_close(ctc_alignment_loss(model, head, batch, targets, every), full)
    # a smaller softmax that holds the targets: a different (lower) loss, still finite
    own = torch.tensor(sorted({t - 1 for row in targets for t in row}))
    assert torch.isfinite(ctc_alignment_loss(model, head, batch, targets, own))
    assert ctc_alignment_loss(model, head, batch, targets, own) < full


def test_sample_vocabulary_holds_the_targets_and_the_corpus_not_the_blocked():
    from serhub.recipes.ctc_alignment import sample_vocabulary

    generator = torch.Generator().manual_seed(0)
    targets = [[5, 9, 9], [12]]  # shifted past the blank: token ids 4, 8, 11
    ids = sample_vocabulary(targets, torch.tensor([20, 30]), 50, 1000, generator, blocked=[30, 8])
    assert torch.equal(ids, torch.sort(ids).values) and len(set(ids.tolist())) == len(ids)
    assert {4, 11, 20} <= set(ids.tolist()) and not {30, 8} & set(ids.tolist())
    assert 40 <= len(ids) <= 55  # the 50 drawn, less the few drawn twice or blocked
    again = sample_vocabulary(targets, torch.tensor([20, 30]), 50, 1000, torch.Generator().manual_seed(0))
    blocked = torch.tensor([8, 30])
    assert torch.equal(torch.unique(torch.cat([ids, blocked])), torch.unique(torch.cat([again, blocked])))


def test_sampled_softmax_training_decodes_over_the_whole_vocabulary(tmp_path):
    """Trained with a few sampled tokens per step, the head still wins under the full softmax."""
    from serhub.modeling import AudioLLMForConditionalGeneration
    from serhub.recipes.ctc_alignment import ctc_greedy_transcripts, pad_rows, train_ctc_alignment

    root = make_parts(tmp_path / "parts")
    torch.manual_seed(0)
    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        root / "enc", root / "llm", LABELS, connector="linear", stack_factor=2
    )
    assert model.get_input_embeddings().weight.shape[0] > 10 * 16  # 16 drawn: a small share
    rows = _rows()
    head, history = train_ctc_alignment(
        model, processor.tokenizer, rows, pad_rows, steps=120, batch_size=4, learning_rate=1e-2, log_every=20,
        sampled_tokens=16,
    )  # fmt: skip
    assert history[-1]["ctc_loss"] < 0.5 * history[0]["ctc_loss"]
    decoded = ctc_greedy_transcripts(model, head, pad_rows(rows), processor.tokenizer)
    assert sum(d == r["transcript"] for d, r in zip(decoded, rows)) >= 3
    with pytest.raises(ValueError, match="sampled_tokens must be >= 0"):
        train_ctc_alignment(model, processor.tokenizer, rows, pad_rows, steps=1, sampled_tokens=-1)
