"""CTC alignment of an audio-LLM's connector to its LLM's own token embeddings (a cheap phase 0).

The connector's audio tokens are scored against the frozen LLM's input-embedding matrix plus a
learned blank and trained with CTC on paired speech and transcripts (the transcript tokenised by the
LLM's own tokenizer). No LLM layer runs, so a step costs a small fraction of an LLM step: the
alignment that ASR pre-training gives an audio-LLM in thousands of GPU steps fits in minutes on a
CPU. After it, each audio token lies near the embedding of the word piece spoken there (or near the
blank), which is what the LLM reads best. The idea is Speech-LLaMA's CTC compressor (Wu et al.,
2023, arXiv:2307.03917) and LegoSLM (Ma et al., 2025, arXiv:2505.11352), here as an objective on the
unchanged connector.

    tokens (B, N, H) -> cosine with [blank; E] (V+1, H) * learned scale -> log-probs (N, B, V+1) -> CTC

The ``ctc_path`` connector carries this head itself (its blank and scale are saved with it, since it
decodes its best path at inference); for the other connectors the head is built here and dropped.
"""

from __future__ import annotations

import math

import torch
from serhub.modeling.ctc_path import BLANK, CTC_INITIAL_SCALE, embedding_ctc_logits
from serhub.recipes.logs import get_logger
from serhub.recipes.optim import train_connector_steps
from torch import nn

logger = get_logger(__name__)


class CTCEmbeddingHead(nn.Module):
    """Scores audio tokens against the frozen LLM input embeddings (cosine, a learned scale) and a
    learned blank direction. Training-time only: it is not part of the saved model. The scale starts
    high: over a 50k-token vocabulary a target needs a logit margin of about log(50k) = 11 over the
    rest before it can win a frame, and a cosine of 1 against ~0 gives only ``scale``."""

    def __init__(self, embeddings: torch.Tensor, scale: float = CTC_INITIAL_SCALE):
        super().__init__()
        weight = embeddings.detach().float()
        self.register_buffer("embeddings", weight, persistent=False)
        self.embedding_rms = float(weight.pow(2).mean().sqrt())
        self.blank = nn.Parameter(nn.functional.normalize(weight.mean(0), dim=0).clone())
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))

    def forward(self, tokens: torch.Tensor, vocabulary: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, H) -> CTC log-probabilities (N, B, V + 1), blank first (``vocabulary``: K + 1)."""
        logits = embedding_ctc_logits(
            tokens, self.embeddings, self.blank, self.log_scale, vocabulary=vocabulary
        )
        return logits.log_softmax(-1).transpose(0, 1)


def own_head(model) -> bool:
    """Whether the model's connector carries its CTC head (``ctc_path``)."""
    return hasattr(model.connector, "ctc_logits")


def ctc_log_probs(model, head: CTCEmbeddingHead | None, batch: dict, vocabulary: torch.Tensor | None = None):
    """CTC log-probabilities (N, B, V + 1), the steps' mask (B, N), and the connector's tokens (None for
    a connector with its own head) for the batch's cached encoder outputs. ``vocabulary``: over those
    token ids only (K + 1; see :func:`sample_vocabulary`)."""
    if head is None:
        states, mask = batch["encoder_hidden_states"], batch["encoder_attention_mask"]
        audio_id = model.config.audio_token_id
        logits, steps = model.connector.ctc_logits(
            states.to(model.connector_dtype), mask.bool(), model.get_input_embeddings().weight,
            [] if audio_id is None else [audio_id], vocabulary,
        )  # fmt: skip
        return logits.log_softmax(-1).transpose(0, 1), steps, None
    tokens, mask = model.audio_tokens(
        encoder_hidden_states=batch["encoder_hidden_states"],
        encoder_attention_mask=batch["encoder_attention_mask"],
    )
    return head(tokens, vocabulary), mask, tokens


def sample_vocabulary(
    targets: list[list[int]], always: torch.Tensor, others: int, vocab_size: int, generator, blocked=()
) -> torch.Tensor:
    """The token ids one training step scores (a sampled softmax): the batch's own (``targets``,
    shifted past the blank), ``always`` (the alignment corpus's tokens: the near misses that matter)
    and ``others`` more drawn uniformly from the rest of the vocabulary, so that over many steps every
    token is pushed away from the speech it does not match. Sorted, without ``blocked``."""
    batch = torch.tensor([t - 1 for row in targets for t in row], dtype=torch.long)
    drawn = torch.randint(0, vocab_size, (others,), generator=generator) if others > 0 else batch[:0]
    ids = torch.unique(torch.cat([batch, always.long(), drawn]))  # sorted
    if len(blocked):
        ids = ids[~torch.isin(ids, torch.as_tensor(list(blocked), dtype=torch.long))]
    return ids


def ctc_targets(tokenizer, transcripts: list[str]) -> list[list[int]]:
    """Each transcript as the LLM writes it (its own tokens, no special tokens), shifted past the blank."""
    return [[t + 1 for t in tokenizer(text, add_special_tokens=False)["input_ids"]] for text in transcripts]


def ctc_alignment_loss(
    model,
    head: CTCEmbeddingHead | None,
    batch: dict,
    targets: list[list[int]],
    vocabulary: torch.Tensor | None = None,
) -> torch.Tensor:
    """CTC of the connector's tokens for the batch's cached encoder outputs (``head`` None: the
    connector's own head), plus (for connectors that do not scale their own output) a penalty keeping
    the tokens' RMS at the LLM's embedding RMS, so the LLM later reads them at the scale of its text
    embeddings. ``vocabulary`` (sorted token ids holding every target): the softmax over those only."""
    log_probs, mask, tokens = ctc_log_probs(model, head, batch, vocabulary)
    lengths = mask.sum(-1).cpu()
    target_lengths = torch.tensor([len(r) for r in targets])
    flat = torch.tensor([t for row in targets for t in row], dtype=torch.long)
    if vocabulary is not None:  # token id t -> its place in the vocabulary, past the blank
        flat = torch.searchsorted(vocabulary, flat - 1) + 1
    per_row = nn.functional.ctc_loss(
        log_probs, flat, lengths, target_lengths, blank=BLANK, reduction="none", zero_infinity=True
    )
    # rows with no transcript, or more target tokens than audio tokens, teach nothing: left out
    usable = (target_lengths > 0) & (target_lengths <= lengths)
    if not bool(usable.any()):
        return log_probs.sum() * 0.0
    loss = (per_row[usable] / target_lengths[usable]).mean()
    if tokens is not None and not model.connector.scaled_output:
        # the valid tokens only, before the square root: padding tokens can be exactly 0 (a zero-bias
        # projection of zeroed frames), where the root's gradient is infinite
        rms = (tokens[mask.bool()].float().pow(2).mean(-1) + 1e-8).sqrt()
        loss = loss + (rms / head.embedding_rms - 1.0).pow(2).mean()
    return loss


@torch.no_grad()
def ctc_greedy_transcripts(model, head, batch: dict, tokenizer) -> list[str]:
    """Best-path decoding of the CTC head (repeats merged, blanks dropped)."""
    log_probs, mask, _ = ctc_log_probs(model, head, batch)
    best = log_probs.argmax(-1).T  # B, N
    texts = []
    for row, valid in zip(best.tolist(), mask.sum(-1).tolist()):
        ids, previous = [], BLANK
        for index in row[: int(valid)]:
            if index != previous and index != BLANK:
                ids.append(index - 1)
            previous = index
        texts.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
    return texts


def corpus_vocabulary(tokenizer, dataset, sampled_tokens: int | None) -> torch.Tensor | None:
    """The sorted token ids of the dataset's transcripts (what a sampled softmax always scores), or
    None when ``sampled_tokens`` is None (the whole vocabulary)."""
    if sampled_tokens is None:
        return None
    if sampled_tokens < 0:
        raise ValueError(f"sampled_tokens must be >= 0 (or None: the whole vocabulary), got {sampled_tokens}")
    texts = dataset["transcript"] if hasattr(dataset, "column_names") else [r["transcript"] for r in dataset]
    corpus = ctc_targets(tokenizer, [text for text in texts if text])
    return torch.tensor(sorted({t - 1 for row in corpus for t in row}), dtype=torch.long)


def train_ctc_alignment(
    model,
    tokenizer,
    dataset,
    collate,
    steps: int,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    seed: int = 0,
    log_every: int = 25,
    callback=None,
    sampled_tokens: int | None = None,
) -> tuple[CTCEmbeddingHead, list[dict]]:
    """``steps`` AdamW steps of CTC on the connector (everything else frozen); ``dataset``: cached
    encoder outputs with a "transcript" column; ``collate(rows) -> batch`` pads them. Returns the
    head (None: the connector's own) and the log (step, loss, seconds of training so far, the
    callback's time left out; ``callback(step, head)``'s dict merged in at log steps).
    ``sampled_tokens`` N: each step's softmax covers the corpus's own tokens plus N others drawn at
    random (:func:`sample_vocabulary`), not the whole vocabulary; None: all."""
    embeddings = model.get_input_embeddings().weight
    corpus_tokens = corpus_vocabulary(tokenizer, dataset, sampled_tokens)
    generator = torch.Generator().manual_seed(seed)
    blocked = [] if model.config.audio_token_id is None else [model.config.audio_token_id]
    if own_head(model):
        head = None
        model.connector.start_blank_from(embeddings)
        parameters = model.connector.ctc_head_parameters()
        for parameter in parameters:
            parameter.requires_grad_(True)
    else:
        head = CTCEmbeddingHead(embeddings)
        parameters = [p for p in model.connector.parameters() if p.requires_grad] + list(head.parameters())

    def loss_of(rows):
        targets = ctc_targets(tokenizer, [r["transcript"] for r in rows])
        vocabulary = None
        if corpus_tokens is not None:
            vocabulary = sample_vocabulary(
                targets, corpus_tokens, sampled_tokens, embeddings.shape[0], generator, blocked
            )
        return ctc_alignment_loss(model, head, collate(rows), targets, vocabulary), {}

    history = train_connector_steps(
        model, dataset, steps, parameters, loss_of, batch_size=batch_size, learning_rate=learning_rate,
        warmup=10, seed=seed, log_every=log_every, loss_name="ctc_loss",
        callback=None if callback is None else (lambda step: callback(step, head)),
        log=lambda entry: logger.info("CTC alignment %s", entry),
    )  # fmt: skip
    model.connector.freeze_untrainable()
    return head, history


def pad_rows(rows) -> dict:
    """Cached encoder outputs of ``rows`` padded into one batch (B, T, D) with their mask."""
    from serhub.recipes.data import pad_cached_states

    hidden, mask = pad_cached_states(rows)
    if hidden.dim() == 4:
        hidden = hidden.transpose(1, 2)
    return {"encoder_hidden_states": hidden, "encoder_attention_mask": mask}


__all__ = [
    "BLANK",
    "CTCEmbeddingHead",
    "aligned_build",
    "ctc_alignment_loss",
    "ctc_log_probs",
    "ctc_greedy_transcripts",
    "ctc_targets",
    "own_head",
    "pad_rows",
    "sample_vocabulary",
    "train_ctc_alignment",
]


# --------------------------------------------------------------------------- a phase 0 for staged runs
CTC_DONE_FILE = "ctc_done.json"


def aligned_build(
    steps: int,
    data: str | list[str],
    learning_rate: float = 3e-3,
    batch_size: int = 16,
    folder: str = "phase0_ctc",
    sampled_tokens: int | None = None,
):
    """A ``build`` for ``staged.run_stage``: the pretrained parts, then ``steps`` CTC alignment steps
    of the connector on the cached dataset(s) ``data`` (their "transcript" column, pooled), saved once
    in ``<output_dir>/<folder>`` (the connector's weights and the log) and reused by later runs.
    ``sampled_tokens``: see :func:`train_ctc_alignment`."""
    names = [data] if isinstance(data, str) else list(data)
    from serhub.recipes.staged import trained_connector_build

    def train(run, model, processor):
        run.logger.info(
            "CTC alignment of the connector to the LLM's embeddings: %d steps on %s", steps, " + ".join(names)
        )
        _, history = train_ctc_alignment(
            model, processor.tokenizer, pooled(run, names), pad_rows, steps, batch_size, learning_rate,
            seed=run.training_args.seed, sampled_tokens=sampled_tokens,
        )  # fmt: skip
        return history

    return trained_connector_build(folder, CTC_DONE_FILE, "CTC alignment", train, "already aligned")


def pooled(run, names: list[str]):
    """The cached datasets ``names`` as one, with the columns CTC reads (clips without a transcript out)."""
    import datasets

    keep = ["encoder_hidden_states", "transcript"]
    parts = [run.dataset(name).select_columns(keep) for name in names]
    data = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    return data.filter(lambda text: bool(text and text.strip()), input_columns="transcript")
