"""A cheap phase 0 for the descriptor system (``--descriptor_alignment_steps``): the descriptor branch
learns to carry what its tokens must tell the LLM before any LLM step runs.

The branch's tokens (B, N, H), pooled over each clip (mean and standard deviation of its valid
tokens), feed one linear head per descriptor attribute (pitch, intonation, speed, loudness: the words
``datasets_scripts.descriptors`` writes) and one for the emotion; class-weighted cross-entropy on the
emotion, cross-entropy on each attribute the clip's descriptors name, and the branch's KL term at the
first stage's beta. No LLM layer runs, so a step costs milliseconds: hundreds fit where the LLM stages
fit a few dozen. The heads are training-time only and dropped; the branch starts stage 1 (which
freezes it) and stage 2 (which trains it on the LLM's answers) from here. It is the descriptor
branch's counterpart of the CTC alignment (``recipes/ctc_alignment.py``) of a content connector.
"""

from __future__ import annotations

import torch
from serhub.datasets_scripts.common import class_counts
from serhub.datasets_scripts.descriptors import WORDS, descriptor_words
from serhub.modeling.losses import class_weights_from_counts
from serhub.recipes.logs import get_logger
from serhub.recipes.optim import train_connector_steps
from torch import nn

logger = get_logger(__name__)

DESCRIPTOR_DONE_FILE = "descriptors_done.json"
ATTRIBUTES = tuple(WORDS)  # pitch_semitones, pitch_range_ratio, speaking_rate_ratio, loudness_db
IGNORE = -100


def attribute_targets(texts: list[str]) -> torch.Tensor:
    """(B, len(ATTRIBUTES)) word index (0 low, 1 middle, 2 high) per attribute; IGNORE where a text
    does not name that attribute."""
    out = torch.full((len(texts), len(ATTRIBUTES)), IGNORE, dtype=torch.long)
    for i, text in enumerate(texts):
        for name, word in descriptor_words(text).items():
            out[i, ATTRIBUTES.index(name)] = WORDS[name].index(word)
    return out


def pool_tokens(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, N, H) tokens and their (B, N) mask -> (B, 2H): each clip's mean and standard deviation."""
    m = mask[..., None].to(tokens.dtype)
    count = m.sum(1).clamp_min(1.0)
    mean = (tokens * m).sum(1) / count
    var = ((tokens - mean[:, None]).pow(2) * m).sum(1) / count
    return torch.cat([mean, (var + 1e-6).sqrt()], -1)


class DescriptorHeads(nn.Module):
    """Linear heads over a clip's pooled tokens: the emotion (``num_labels``) and each attribute (3)."""

    def __init__(self, hidden_size: int, num_labels: int):
        super().__init__()
        self.norm = nn.LayerNorm(2 * hidden_size)
        self.emotion = nn.Linear(2 * hidden_size, num_labels)
        self.attributes = nn.Linear(2 * hidden_size, 3 * len(ATTRIBUTES))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> emotion logits (B, C), attribute logits (B, len(ATTRIBUTES), 3)."""
        pooled = self.norm(pool_tokens(tokens, mask))
        return self.emotion(pooled), self.attributes(pooled).view(len(pooled), len(ATTRIBUTES), 3)


def branch_tokens(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The descriptor branch's tokens and mask for a batch of cached encoder outputs (every layer)."""
    states = batch["encoder_hidden_states"].to(model.connector_dtype)
    if states.dim() == 3:
        states = states[:, None]
    return model.connector.descriptor(states, batch["encoder_attention_mask"].bool())


def alignment_loss(
    model, heads: DescriptorHeads, batch: dict, labels: torch.Tensor, attributes: torch.Tensor,
    class_weights: torch.Tensor | None, kl_weight: float,
) -> tuple[torch.Tensor, dict]:  # fmt: skip
    """The emotion's class-weighted CE + the mean CE over the attributes named + ``kl_weight`` * KL."""
    tokens, mask = branch_tokens(model, batch)
    emotion, words = heads(tokens.float(), mask)
    emotion_loss = nn.functional.cross_entropy(emotion, labels, weight=class_weights)
    named = attributes != IGNORE
    attribute_loss = (
        nn.functional.cross_entropy(words[named], attributes[named]) if named.any() else emotion.sum() * 0.0
    )
    kl = model.connector.descriptor.kl
    loss = emotion_loss + attribute_loss + kl_weight * (kl if kl is not None else 0.0)
    return loss, {
        "emotion_loss": float(emotion_loss.detach()),
        "attribute_loss": float(attribute_loss.detach()),
    }


@torch.no_grad()
def head_scores(
    model, heads: DescriptorHeads, dataset, collate, num_labels: int, batch_size: int = 32
) -> dict:
    """The heads' macro-F1 on the emotion and their accuracy per attribute on ``dataset`` (a learning
    curve of the branch: what a linear reader of its pooled tokens gets)."""
    from sklearn.metrics import f1_score

    was_training = model.connector.training
    model.connector.eval()
    predicted, true, words, targets = [], [], [], []
    for start in range(0, len(dataset), batch_size):
        rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        emotion, attribute = heads(*branch_tokens(model, collate(rows)))
        predicted += emotion.argmax(-1).tolist()
        true += [int(r["labels"]) for r in rows]
        words.append(attribute.argmax(-1))
        targets.append(attribute_targets([r["descriptors"] for r in rows]))
    model.connector.train(was_training)
    words, targets = torch.cat(words), torch.cat(targets)
    scores = {
        "emotion_macro_f1": round(
            float(
                f1_score(true, predicted, average="macro", labels=list(range(num_labels)), zero_division=0)
            ),
            4,
        )
    }
    for k, name in enumerate(ATTRIBUTES):
        named = targets[:, k] != IGNORE
        if named.any():
            scores[f"{name}_accuracy"] = round(
                float((words[named, k] == targets[named, k]).float().mean()), 4
            )
    return scores


def train_descriptor_alignment(
    model, dataset, collate, num_labels: int, steps: int, batch_size: int = 16,
    learning_rate: float = 1e-3, kl_weight: float = 1e-2, seed: int = 0, log_every: int = 50,
    evaluation=None,
) -> tuple[DescriptorHeads, list[dict]]:  # fmt: skip
    """``steps`` AdamW steps on the descriptor branch and the heads (all else frozen). ``dataset``:
    cached encoder outputs with "labels" and "descriptors"; ``collate(rows) -> batch`` pads them;
    ``evaluation``: a cached split scored with :func:`head_scores` at each log step."""
    torch.manual_seed(seed)
    branch = model.connector.descriptor
    branch.requires_grad_(True)
    heads = DescriptorHeads(branch.adapter[-1].out_features, num_labels)
    class_weights = class_weights_from_counts(class_counts(dataset, "labels", num_labels)).float()
    parameters = list(branch.parameters()) + list(heads.parameters())

    def loss_of(rows):
        labels = torch.tensor([int(r["labels"]) for r in rows])
        attributes = attribute_targets([r["descriptors"] for r in rows])
        return alignment_loss(model, heads, collate(rows), labels, attributes, class_weights, kl_weight)

    def scores(step):
        return {f"eval_{k}": v for k, v in head_scores(model, heads, evaluation, collate, num_labels).items()}

    history = train_connector_steps(
        model, dataset, steps, parameters, loss_of, batch_size=batch_size, learning_rate=learning_rate,
        weight_decay=0.01, warmup=20, seed=seed, log_every=log_every,
        callback=None if evaluation is None else scores,
        log=lambda entry: logger.info("descriptor alignment %s", entry),
    )  # fmt: skip
    model.connector.eval()
    return heads, history


def descriptor_aligned_build(
    steps: int, learning_rate: float, kl_weight: float, folder: str = "stage0_descriptors"
):
    """A ``build`` for ``staged.run_stage``: the pretrained parts, then ``steps`` descriptor-alignment
    steps of the descriptor branch on the cached training split, scored on the validation split at
    each log step; saved once in ``<output_dir>/<folder>`` and reused by later runs."""
    from serhub.recipes.ctc_alignment import pad_rows
    from serhub.recipes.staged import trained_connector_build

    def train(run, model, processor):
        data = run.data_args
        run.logger.info(
            "descriptor alignment of the descriptor branch: %d steps on %s", steps, data.train_split
        )
        keep = ["encoder_hidden_states", "labels", "descriptors"]
        _, history = train_descriptor_alignment(
            model, run.dataset(data.train_split).select_columns(keep), pad_rows, len(run.labels), steps,
            batch_size=16, learning_rate=learning_rate, kl_weight=kl_weight, seed=run.training_args.seed,
            log_every=max(1, min(50, steps // 6)),
            evaluation=run.dataset(data.eval_split).select_columns(keep) if data.eval_split else None,
        )  # fmt: skip
        return history

    return trained_connector_build(
        folder, DESCRIPTOR_DONE_FILE, "descriptor alignment", train, "already aligned"
    )


__all__ = [
    "ATTRIBUTES",
    "DESCRIPTOR_DONE_FILE",
    "DescriptorHeads",
    "alignment_loss",
    "attribute_targets",
    "descriptor_aligned_build",
    "head_scores",
    "pool_tokens",
    "train_descriptor_alignment",
]
