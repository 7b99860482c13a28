"""Building blocks shared by serhub's model families. Every module is mask-aware: padding never
changes a result, so a padded batch gives the same outputs as one example at a time."""

from __future__ import annotations

import math

import torch
from torch import nn

FRAME_NORMS = ("none", "layer", "global")


class WeightedLayerSum(nn.Module):
    """Learned softmax-weighted sum of an encoder's hidden layers (SUPERB; MSP-Podcast baseline).

    Initialised to equal weights. ``hidden_states``: a sequence of L tensors (B, T, D) or one tensor
    (B, L, T, D) -> (B, T, D).
    """

    def __init__(self, num_layers: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_layers))

    def forward(self, hidden_states) -> torch.Tensor:
        stacked = (
            hidden_states if torch.is_tensor(hidden_states) else torch.stack(tuple(hidden_states), dim=1)
        )  # B, L, T, D
        if stacked.shape[1] != self.weights.numel():
            raise ValueError(
                f"WeightedLayerSum was built for {self.weights.numel()} layers, got {stacked.shape[1]}; "
                "pass every hidden state of the encoder (embeddings included)."
            )
        w = self.weights.softmax(-1).to(stacked.dtype)
        return torch.einsum("l,bltd->btd", w, stacked)


class AttentiveStatisticsPooling(nn.Module):
    """Attentive statistics pooling (Okabe et al., Interspeech 2018, eqs. 7-10).

    e_t = v^T tanh(W h_t + b),  a = softmax(e) over valid frames,
    mu = sum_t a_t h_t,  sigma = sqrt(sum_t a_t h_t^2 - mu^2)  ->  [mu; sigma]   # B, T, D -> B, 2D
    """

    def __init__(self, hidden_size: int, attention_size: int = 128, eps: float = 1e-5):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Linear(hidden_size, attention_size), nn.Tanh(), nn.Linear(attention_size, 1)
        )
        self.eps = eps

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        scores = self.attention(hidden_states).squeeze(-1).float()  # B, T
        if mask is not None:
            scores = scores.masked_fill(~mask.bool(), torch.finfo(scores.dtype).min)
        alpha = scores.softmax(-1).unsqueeze(-1)  # B, T, 1
        h = hidden_states.float()
        mean = (alpha * h).sum(1)  # B, D
        var = (alpha * h.pow(2)).sum(1) - mean.pow(2)
        std = var.clamp_min(self.eps).sqrt()
        return torch.cat([mean, std], dim=-1).to(hidden_states.dtype)  # B, 2D


class ClassificationHead(nn.Module):
    """Linear -> activation -> dropout -> Linear (the MLP head of the speech and LLM classifiers)."""

    def __init__(self, input_size: int, hidden_size: int, num_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.dense = nn.Linear(input_size, hidden_size)
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(hidden_size, num_outputs)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(self.activation(self.dense(self.dropout(pooled)))))


def stack_frames(frames: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` consecutive frames side by side: B, T, D -> B, ceil(T/k), k*D (padding frames zeroed),
    and the tokens' mask (a token is valid when any of its frames is)."""
    b, t, d = frames.shape
    pad = (-t) % k
    frames = nn.functional.pad(frames * mask[..., None].to(frames.dtype), (0, 0, 0, pad))
    mask = nn.functional.pad(mask, (0, pad))
    return frames.reshape(b, (t + pad) // k, k * d), mask.reshape(b, -1, k).any(-1)


class LinearProjector(nn.Module):
    """THAU-UPM's projector: stack ``k`` consecutive frames, then one linear map to the LLM width.

    B, T, D -> B, ceil(T/k), k*D -> B, N, H. A token is valid when any of its frames is.
    """

    def __init__(self, input_size: int, output_size: int, stack_factor: int = 4):
        super().__init__()
        self.stack_factor = stack_factor
        self.proj = nn.Linear(input_size * stack_factor, output_size)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stacked, token_mask = stack_frames(frames, mask, self.stack_factor)  # B, N, k*D
        return self.proj(stacked), token_mask


class VariationalBranch(nn.Module):
    """One variational information-bottleneck branch (arXiv:2505.23236, sec. 2): its own weighted sum
    of the encoder's layers -> (mu, log sigma^2) per frame -> z (sampled in training, mu at
    inference) -> ``stack_factor`` frames stacked -> MLP adapter to the LLM width.

    ``kl`` after a forward: KL(q(z|x) || N(0, I)) summed over the latent and averaged over valid frames.
    """

    def __init__(
        self,
        num_layers: int,
        input_size: int,
        latent_size: int,
        output_size: int,
        stack_factor: int = 4,
        output_scale: float | None = None,
    ):
        super().__init__()
        # every layer standardised per channel with training-set statistics before the weighted sum:
        # Whisper's frames share one large component (see QueryPoolingMapper), which per-frame
        # LayerNorm keeps; with it the branch's tokens came out alike for every clip (token
        # diversity 0.015, SER at chance, in a 120-step CPU run)
        self.in_norm = RunningFrameNorm(num_layers * input_size)
        self.layer_sum = WeightedLayerSum(num_layers)
        self.posterior = nn.Linear(input_size, 2 * latent_size)
        self.stack_factor = stack_factor
        self.adapter = nn.Sequential(
            nn.Linear(latent_size * stack_factor, output_size), nn.GELU(), nn.Linear(output_size, output_size)
        )
        self.output_gain = (
            nn.Parameter(torch.full((output_size,), float(output_scale))) if output_scale else None
        )
        self.kl = None

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, layers, t, d = hidden_states.shape
        flat = hidden_states.permute(0, 2, 1, 3).reshape(b, t, layers * d)  # B, T, L*D
        # a frozen branch (its parameters not trained: the other stage's) keeps its statistics too
        update = self.training and self.posterior.weight.requires_grad
        normed = self.in_norm(flat, mask, update=update).reshape(b, t, layers, d).permute(0, 2, 1, 3)
        frames = self.layer_sum(normed)  # B, T, D
        mu, log_var = self.posterior(frames).chunk(2, dim=-1)
        log_var = log_var.clamp(-10.0, 10.0)
        z = mu + torch.randn_like(mu) * (0.5 * log_var).exp() if self.training else mu
        m = mask[..., None].to(mu.dtype)
        kl = 0.5 * (mu.pow(2) + log_var.exp() - log_var - 1.0).sum(-1, keepdim=True)
        self.kl = (kl * m).sum() / m.sum().clamp_min(1.0)
        stacked, token_mask = stack_frames(z, mask, self.stack_factor)
        tokens = self.adapter(stacked)
        if self.output_gain is not None:
            tokens = tokens * torch.rsqrt(tokens.pow(2).mean(-1, keepdim=True) + 1e-6) * self.output_gain
        return tokens, token_mask


class VariationalBottleneckConnector(nn.Module):
    """The descriptor system's connector: two parallel ``VariationalBranch``es over the same encoder
    layers, content (Z_con, trained on ASR) and descriptor (Z_des, trained on descriptors + SER).

    (B, L, T, D) -> tokens (B, 2N, H) laid out [content N | descriptor N] per clip, and their mask:
    a clip's valid tokens read, in order, its content tokens then its descriptor tokens, which the
    prompt's two audio placeholders (``prompting_audio_llm.AUDIO_GROUPS``) receive. The KL after a
    forward: ``pop_kl()`` (the recipe weights it by the annealed beta).
    """

    BRANCHES = ("content", "descriptor")

    def __init__(self, num_layers, input_size, latent_size, output_size, stack_factor=4, output_scale=None):
        super().__init__()
        self.content = VariationalBranch(
            num_layers, input_size, latent_size, output_size, stack_factor, output_scale
        )
        self.descriptor = VariationalBranch(
            num_layers, input_size, latent_size, output_size, stack_factor, output_scale
        )

    def pop_kl(self) -> torch.Tensor | None:
        """The two branches' KL terms of the last forward, summed, and forget them (so a later
        forward without audio cannot add a stale term)."""
        parts = [b.kl for b in (self.content, self.descriptor) if b.kl is not None]
        self.content.kl = self.descriptor.kl = None
        return sum(parts) if parts else None

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if hidden_states.dim() == 3:  # one layer given: the weighted sum has only it to weigh
            hidden_states = hidden_states[:, None]
        content, content_mask = self.content(hidden_states, mask)
        descriptor, descriptor_mask = self.descriptor(hidden_states, mask)
        return torch.cat([content, descriptor], 1), torch.cat([content_mask, descriptor_mask], 1)


def sinusoidal_positions(length: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """(length, dim) sine/cosine position codes (Vaswani et al. 2017, sec. 3.5); any length."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(position * freq)
    codes[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return codes.to(dtype or torch.float32)


class RunningFrameNorm(nn.Module):
    """Per-channel standardisation of encoder frames, (x - mean) / std, with the statistics
    accumulated over every valid frame seen in training (a cumulative average: BatchNorm with
    ``momentum=None``, but mask-aware, and applied with the running statistics in training as in
    inference, so both see the same map and a padded batch equals one clip at a time).
    Before any training it is the identity. B, T, D -> B, T, D."""

    def __init__(self, size: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("running_mean", torch.zeros(size))
        self.register_buffer("running_var", torch.ones(size))
        self.register_buffer("num_frames", torch.zeros((), dtype=torch.long))  # integer: survives .to(bf16)

    @torch.no_grad()
    def update(self, frames: torch.Tensor, mask: torch.Tensor) -> None:
        valid = frames[mask.bool()].float()  # N, D
        n, seen = valid.shape[0], int(self.num_frames)
        if n == 0:
            return
        total = seen + n
        mean, var = valid.mean(0), valid.var(0, unbiased=False)
        delta = mean - self.running_mean.float()
        # Chan et al.'s parallel update of mean and variance
        self.running_var.copy_(
            (self.running_var.float() * seen + var * n + delta.pow(2) * seen * n / total) / total
        )
        self.running_mean.add_(delta * n / total)
        self.num_frames.fill_(total)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, update: bool | None = None) -> torch.Tensor:
        """``update``: gather these frames' statistics (default: in training)."""
        if self.training if update is None else update:
            self.update(frames, mask)
        mean, var = self.running_mean.to(frames.dtype), self.running_var.to(frames.dtype)
        return (frames - mean) * torch.rsqrt(var + self.eps)


class QueryPoolingMapper(nn.Module):
    """EmoSLLM's QPMapper (arXiv:2508.14130, sec. 3.1): ``num_queries`` learnable queries are put
    before the audio frames, a small transformer encoder runs over both, and the query outputs are
    the audio tokens: B, T, D -> B, Q, H, whatever T.

    What differs from a plain transformer over [queries; frames] keeps the audio tokens
    informative when the mapper is trained for few steps. Without it, 30 steps of SER training
    turn the 32 tokens into one constant soft prompt (mean pairwise cosine distance between clips
    0.50 -> 0.0001), with norms ~20x those of the LLM's embeddings, and the LLM ignores the audio:

    - ``frame_norm``: the encoder's frames are standardised per channel before the mapper.
      "global" = with statistics gathered over the training frames (``RunningFrameNorm``):
      Whisper tiny.en's clip-mean frames share ~92 % cosine similarity (one large common
      component), so the near-uniform attention of a new mapper gives every clip the same tokens;
      standardised, the clip means are nearly orthogonal (mean pairwise cosine distance 0.08 ->
      0.93) while a linear probe on them keeps the same macro-F1. "layer" = LayerNorm per frame
      (does not remove the common component); "none" = the paper's raw frames.
    - every query starts from the clip's mean projected frame (plus its learned vector), so the
      audio is in the query stream from the first step instead of only through attention;
    - queries attend to the frames only, never to each other: with the queries visible, the
      cheapest way to fit the class prior is queries that attend to themselves and ignore the audio;
    - ``positions``: sinusoidal time positions on the frames (scaled by a learned factor starting
      at 0.1), so queries can attend to different parts of the clip (a transcript needs order);
    - ``output_scale``: the tokens are RMS-normalised with a learned gain that starts at the LLM's
      own embedding RMS, so audio tokens enter the LLM at the scale of its text embeddings.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        num_queries: int = 32,
        num_layers: int = 2,
        hidden_size: int | None = None,
        num_heads: int = 8,
        frame_norm: str = "global",
        positions: bool = True,
        output_scale: float | None = None,
        max_frames: int = 1500,
    ):
        super().__init__()
        hidden = hidden_size or input_size
        if hidden % num_heads:
            raise ValueError(f"mapper hidden size {hidden} is not divisible by mapper_heads={num_heads}")
        if frame_norm not in FRAME_NORMS:
            raise ValueError(f"frame_norm must be one of {FRAME_NORMS}, got {frame_norm!r}")
        self.frame_norm, self.positions, self.max_frames = frame_norm, positions, max_frames
        self.in_norm = {"layer": nn.LayerNorm(input_size), "global": RunningFrameNorm(input_size)}.get(
            frame_norm
        )
        self.in_proj = nn.Linear(input_size, hidden)
        self.queries = nn.Parameter(torch.randn(num_queries, hidden) * 0.02)
        # positions start small beside the frames' content (~0.4 RMS after in_proj), so they order
        # the frames without drowning what differs between clips
        self.position_scale = nn.Parameter(torch.tensor(0.1)) if positions else None
        layer = nn.TransformerEncoderLayer(
            hidden, num_heads, 4 * hidden, dropout=0.0, batch_first=True, norm_first=True
        )
        # no nested-tensor fast path: it changes results with the padding of the batch
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.out_proj = nn.Linear(hidden, output_size)
        # gain of the RMS-normalised output; None: the paper's unnormalised linear output
        self.output_gain = (
            nn.Parameter(torch.full((output_size,), float(output_scale))) if output_scale else None
        )

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, q = frames.shape[0], frames.shape[1], self.queries.shape[0]
        if self.frame_norm == "global":
            frames = self.in_norm(frames, mask)
        elif self.frame_norm == "layer":
            frames = self.in_norm(frames)
        # Long audio: windows of max_frames (30 s of Whisper frames) are pooled one at a time and their
        # query outputs averaged, weighted by valid frames, so memory stays O(T) instead of O(T^2)
        # (a 10-minute clip would otherwise ask for ~30 GB of attention scores). Windows start at
        # fixed frame positions, so a clip's tokens do not depend on the rest of its batch.
        pooled, weight = 0.0, 0.0
        for start in range(0, t, self.max_frames):
            window = mask[:, start : start + self.max_frames].bool()
            valid = window.sum(1).to(frames.dtype)[:, None, None]  # B, 1, 1
            if not bool(valid.any()):
                continue
            # a clip with no frame in this window attends to a dummy one; its weight is 0
            window = window.clone()
            window[valid[:, 0, 0] == 0, 0] = True
            pooled = pooled + valid * self._pool(frames[:, start : start + self.max_frames], window)
            weight = weight + valid
        tokens = self.out_proj(pooled / weight)  # B, Q, H_llm
        if self.output_gain is not None:
            tokens = tokens * torch.rsqrt(tokens.pow(2).mean(-1, keepdim=True) + 1e-6) * self.output_gain
        return tokens, torch.ones(b, q, dtype=torch.bool, device=frames.device)

    def _pool(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Normalised frames of one window -> the queries' final states. B, T, D -> B, Q, H."""
        b, t, q = frames.shape[0], frames.shape[1], self.queries.shape[0]
        x = self.in_proj(frames)  # B, T, H
        if self.positions:
            x = x + self.position_scale.to(x.dtype) * sinusoidal_positions(t, x.shape[-1], x.device, x.dtype)
        m = mask[..., None].to(x.dtype)
        pooled = (x * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1.0)  # B, 1, H
        queries = self.queries.to(x.dtype) + pooled  # B, Q, H: every query starts from the clip's mean
        x = torch.cat([queries, x], dim=1)  # B, Q+T, H
        padding = torch.cat([torch.zeros(b, q, dtype=torch.bool, device=mask.device), ~mask], dim=1)
        # queries read the frames, never each other (nor do frames read queries): with the queries
        # visible, a few steps teach them to attend to themselves and ignore the audio altogether
        blocked = torch.zeros(q + t, q + t, dtype=torch.bool, device=x.device)
        blocked[:, :q] = True
        x = self.encoder(x, mask=blocked, src_key_padding_mask=padding)
        return self.norm(x[:, :q])


def score_labels(
    language_model, embeds, attention_mask, positions, label_ids: list[list[int]]
) -> torch.Tensor:
    """log p(label | prompt) for every label: (B, C), from a causal LM's next-token distribution after
    a left-padded prompt (so the last position is every row's answer position). Multi-token labels
    use their full likelihood: each row's KV cache is copied once per label and continued with the
    label's tokens. Shared by the audio-LLM and text-LLM classifiers (THAU's label scoring)."""
    out = language_model(
        inputs_embeds=embeds,
        attention_mask=attention_mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
    )
    first = out.logits[:, -1].float().log_softmax(-1)  # left padding: the last position is the answer's
    scores = torch.stack([first[:, ids[0]] for ids in label_ids], dim=-1)  # B, C
    longest = max(len(ids) for ids in label_ids)
    if longest == 1:
        return scores
    # continue every row with each label's tokens 0..k-2 on a copy of the prompt's cache; the
    # output at continuation position j predicts token j+1 of the label
    b, c = embeds.shape[0], len(label_ids)
    inputs = torch.zeros(c, longest - 1, dtype=torch.long, device=embeds.device)
    targets = torch.zeros(c, longest - 1, dtype=torch.long, device=embeds.device)
    valid = torch.zeros(c, longest - 1, dtype=torch.long, device=embeds.device)
    for j, ids in enumerate(label_ids):
        inputs[j, : len(ids) - 1] = torch.tensor(ids[:-1])
        targets[j, : len(ids) - 1] = torch.tensor(ids[1:])
        valid[j, : len(ids) - 1] = 1
    cache = out.past_key_values
    cache.batch_repeat_interleave(c)
    mask = torch.cat([attention_mask.repeat_interleave(c, 0), valid.repeat(b, 1)], 1)
    cont_positions = (
        positions[:, -1:].repeat_interleave(c, 0) + 1 + torch.arange(longest - 1, device=embeds.device)
    )
    logp = (
        language_model(
            input_ids=inputs.repeat(b, 1),
            attention_mask=mask,
            position_ids=cont_positions,
            past_key_values=cache,
            use_cache=True,
        )
        .logits.float()
        .log_softmax(-1)
    )  # B*C, k-1, V
    rest = (logp.gather(-1, targets.repeat(b, 1)[..., None]).squeeze(-1) * valid.repeat(b, 1)).sum(-1)
    return scores + rest.view(b, c)


__all__ = [
    "AttentiveStatisticsPooling",
    "ClassificationHead",
    "LinearProjector",
    "QueryPoolingMapper",
    "sinusoidal_positions",
    "RunningFrameNorm",
    "score_labels",
    "WeightedLayerSum",
]
