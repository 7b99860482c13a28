"""Graph-fusion speech emotion recognition (arXiv:2506.02088), as a transformers audio classifier.

    audio -> speech encoders (frozen) -> weighted layer sum -> mean over frames ─┐
    audio -> ASR (Whisper, frozen) -> transcript -> text encoder (frozen) -> mean ─┤ nodes
    audio -> F0 (swift-f0) -> mel -> 256 embedding bins (+ unvoiced) -> mean ─────┤ (B, N, H)
    audio -> log-mel -> small CNN (trained from scratch) -> mean ──────────────────┘
        -> fusion: GATv2 graph attention | cross-attention | concat -> SwiGLU MLP -> logits

Every branch first reduces its input to a fixed *summary* that only frozen parts produce
(``summaries``): per-layer frame means of each speech encoder (a weighted layer sum and a mean over
frames commute, so the layer weights still train on it), the text encoder's mean embedding, the
histogram of F0 bins (its mean embedding is the histogram times the table), and the log-mel frames
for the CNN. The recipe caches the summaries once; training and inference run the same trainable
``fuse`` on them, so a cached run and ``pipeline("audio-classification")`` give the same logits.

A modality that is missing for a clip (no transcript, no voiced frame) is a masked node: it takes
no part in attention or pooling, and is never a zero vector passed off as data.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_graph_fusion import GraphFusionConfig
from .layers import WeightedLayerSum
from .losses import build_classification_loss
from .prosody import quantize_f0
from .speech_encoder import SpeechEncoder

ASR_TOKENIZER, TEXT_TOKENIZER = "asr_tokenizer", "text_tokenizer"


@functools.lru_cache(maxsize=2)
def _whisper_features(n_mels: int):
    """The ASR sub-model's own 30-s log-mel input (built once: its mel filters cost a few ms)."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=n_mels)


@dataclass
class GraphFusionOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    node_mask: torch.Tensor | None = None  # (B, N): which modality nodes each clip had
    transcripts: list[str] | None = None


class DenseGATv2(nn.Module):
    """Multi-head GATv2 attention (Brody et al., ICLR 2022) over a small dense graph with a node mask:
    e_ij = a^T LeakyReLU(W_s h_i + W_t h_j), softmax over the valid j, h_i' = sum_j a_ij W_t h_j.
    Modalities form a fully connected graph with self-loops (a handful of nodes: a dense form is
    exact and needs no graph library). Residual + LayerNorm, as a transformer block."""

    def __init__(self, size: int, heads: int, dropout: float = 0.1):
        super().__init__()
        self.heads, self.head_size = heads, size // heads
        self.source = nn.Linear(size, size)
        self.target = nn.Linear(size, size)
        self.attention = nn.Parameter(torch.randn(heads, self.head_size) * self.head_size**-0.5)
        self.out = nn.Linear(size, size)
        self.norm = nn.LayerNorm(size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, nodes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, _ = nodes.shape
        s = self.source(nodes).view(b, n, self.heads, self.head_size)
        t = self.target(nodes).view(b, n, self.heads, self.head_size)
        pair = nn.functional.leaky_relu(s[:, :, None] + t[:, None], 0.2)  # B, N_i, N_j, H, d
        scores = (pair * self.attention).sum(-1)  # B, N_i, N_j, H
        scores = scores.masked_fill(~mask[:, None, :, None], torch.finfo(scores.dtype).min)
        weights = self.dropout(scores.softmax(2))
        mixed = torch.einsum("bijh,bjhd->bihd", weights, t).reshape(b, n, -1)
        return self.norm(nodes + self.dropout(self.out(nn.functional.elu(mixed))))


class CrossModalAttention(nn.Module):
    """HCAM-like fusion: every modality node attends to the others (scaled dot-product, masked)."""

    def __init__(self, size: int, heads: int, dropout: float = 0.1):
        super().__init__()
        self.attention = nn.MultiheadAttention(size, heads, dropout=dropout, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(size), nn.LayerNorm(size)
        self.ffn = nn.Sequential(nn.Linear(size, 2 * size), nn.GELU(), nn.Linear(2 * size, size))
        self.dropout = nn.Dropout(dropout)

    def forward(self, nodes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mixed, _ = self.attention(nodes, nodes, nodes, key_padding_mask=~mask, need_weights=False)
        nodes = self.norm1(nodes + self.dropout(mixed))
        return self.norm2(nodes + self.dropout(self.ffn(nodes)))


class SwiGLUClassifier(nn.Module):
    """(silu(x W_a) * x W_b) W_o with dropout: the paper's SwiGLU MLP head."""

    def __init__(self, size: int, hidden: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.gate_up = nn.Linear(size, 2 * hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, -1)
        return self.out(self.dropout(nn.functional.silu(gate) * up))


class SpectralCNN(nn.Module):
    """A small log-mel CNN (stands in for CED-Small): 2x2 average pooling of the log-mel (40 bands,
    20 ms frames: four times less work), 3 blocks of conv, BatchNorm, ReLU and 2x2 max pooling, then a
    masked mean over time. Padding never reaches a valid frame: the input is
    re-masked before every block, and a pooled frame is valid only when both its frames were, so a
    clip gives the same vector alone and in a padded batch."""

    def __init__(self, n_mels: int, channels: int, output_size: int):
        super().__init__()
        self.blocks = nn.ModuleList()
        c_in = 1
        for c_out in (channels, channels, 2 * channels):
            self.blocks.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)
                )
            )
            c_in = c_out
        self.proj = nn.Linear(c_in * (n_mels // 16), output_size)

    def forward(self, log_mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log_mel: (B, T, n_mels), mask: (B, T) -> (B, output_size)."""
        mask = mask.bool()
        if log_mel.shape[1] < 16:  # shorter than the four poolings: padded (masked), the node is masked later
            pad = 16 - log_mel.shape[1]
            log_mel = nn.functional.pad(log_mel, (0, 0, 0, pad))
            mask = nn.functional.pad(mask, (0, pad))
        x = log_mel.transpose(1, 2)[:, None]  # B, 1, mels, T
        x = nn.functional.avg_pool2d(x * mask[:, None, None, :].to(x.dtype), 2)
        t = x.shape[-1]
        mask = mask[:, 0 : 2 * t : 2] & mask[:, 1 : 2 * t : 2]
        for block in self.blocks:
            x = block(x * mask[:, None, None, :].to(x.dtype))
            t = x.shape[-1]
            mask = mask[:, 0 : 2 * t : 2] & mask[:, 1 : 2 * t : 2]
        x = x.flatten(1, 2).transpose(1, 2)  # B, T/8, C*mels/8
        m = mask[..., None].to(x.dtype)
        return self.proj((x * m).sum(1) / m.sum(1).clamp_min(1.0))


class SummaryStandardizer(nn.Module):
    """Per-dimension standardisation of the frozen summaries with training-set statistics (buffers,
    saved with the model; identity until ``fit``). Frame means of a Whisper layer share one large
    common component across clips (~0.9 cosine similarity): standardised, what differs between clips
    is what the projections see, and training leaves its plateau many epochs sooner."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        super().__init__()
        for name, shape in shapes.items():
            self.register_buffer(f"{name}_mean", torch.zeros(shape))
            self.register_buffer(f"{name}_std", torch.ones(shape))

    @torch.no_grad()
    def fit(self, summaries: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None = None) -> None:
        for name, values in summaries.items():
            if not hasattr(self, f"{name}_mean"):
                continue
            rows = values.float()
            if masks and name in masks:
                rows = rows[masks[name].bool()]
            if len(rows) < 2:
                continue
            getattr(self, f"{name}_mean").copy_(rows.mean(0))
            getattr(self, f"{name}_std").copy_(rows.std(0).clamp_min(1e-5))

    def forward(self, name: str, values: torch.Tensor) -> torch.Tensor:
        mean, std = getattr(self, f"{name}_mean"), getattr(self, f"{name}_std")
        return (values - mean.to(values.dtype)) / std.to(values.dtype)


class GraphFusionForAudioClassification(PreTrainedModel):
    config_class = GraphFusionConfig
    base_model_prefix = "graph_fusion"
    # forward returns the mean loss of the batch it is given and ignores num_items_in_batch: the Trainer
    # must divide it by the gradient-accumulation steps (it skips that for models said to accept loss kwargs)
    accepts_loss_kwargs = False
    main_input_name = "input_features"

    def __init__(self, config: GraphFusionConfig):
        super().__init__(config)
        h = config.hidden_size
        self.speech_encoders = nn.ModuleList(SpeechEncoder(c) for c in config.speech_configs)
        self.layer_weights = nn.ModuleList(
            WeightedLayerSum(c.num_hidden_layers + 1) for c in config.speech_configs
        )
        self.speech_proj = nn.ModuleList(nn.Linear(encoder_width(c), h) for c in config.speech_configs)
        if config.text_config is not None:
            self.text_encoder = AutoModel.from_config(config.text_config)
            self.text_proj = nn.Linear(config.text_config.hidden_size, h)
        if config.asr_config is not None:
            from transformers import WhisperForConditionalGeneration

            self.asr = WhisperForConditionalGeneration(config.asr_config)
        if config.use_f0:
            self.f0_embedding = nn.Embedding(config.f0_bins + 1, config.f0_embedding_size)
            self.f0_proj = nn.Linear(config.f0_embedding_size, h)
        if config.use_spectral:
            self.spectral = SpectralCNN(config.n_mels, config.spectral_channels, h)
        shapes = {
            f"speech_{i}": (c.num_hidden_layers + 1, encoder_width(c))
            for i, c in enumerate(config.speech_configs)
        }
        if config.text_config is not None:
            shapes["text"] = (config.text_config.hidden_size,)
        self.feature_stats = SummaryStandardizer(shapes)
        self.node_type = nn.Parameter(torch.zeros(len(config.branches), h))  # which modality a node is
        self.missing = nn.Parameter(
            torch.zeros(len(config.branches), h)
        )  # concat's stand-in for a masked node
        block = {"gat": DenseGATv2, "cross_attention": CrossModalAttention}.get(config.fusion)
        self.fusion = nn.ModuleList(
            block(h, config.fusion_heads, config.dropout) for _ in range(config.fusion_layers)
        ) if block else None  # fmt: skip
        if config.fusion == "concat":
            self.concat_proj = nn.Linear(len(config.branches) * h, h)
        self.classifier = SwiGLUClassifier(h, config.mlp_size, len(config.labels), config.dropout)
        self.tokenizers: dict = {}
        self.post_init()
        self.freeze_backbones()

    @torch.no_grad()
    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            module.weight.normal_(0.0, 0.02)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, 0.02)
        elif isinstance(module, GraphFusionForAudioClassification):
            module.node_type.normal_(0.0, 0.02)
            module.missing.zero_()

    def freeze_backbones(self) -> None:
        """The pretrained parts (speech encoders, text encoder, ASR) never train."""
        for name in ("speech_encoders", "text_encoder", "asr"):
            part = getattr(self, name, None)
            if part is not None:
                part.requires_grad_(False)
                part.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        for name in ("speech_encoders", "text_encoder", "asr"):
            if getattr(self, name, None) is not None:
                getattr(self, name).eval()
        return self

    # ---------------------------------------------------------------- frozen parts -> summaries
    @torch.no_grad()
    def speech_summaries(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor,
        input_values: torch.Tensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Per encoder: (B, L+1, D) masked frame means of every hidden layer. Whisper encoders read
        the log-mel frames; the others (WavLM, HuBERT, wav2vec2, ...) the waveform, standardised per clip."""
        out = []
        for encoder in self.speech_encoders:
            if encoder.is_whisper:
                states, mask = encoder(input_features, attention_mask)
            else:
                if input_values is None:
                    raise ValueError("a WavLM/HuBERT/wav2vec2 branch needs the waveform (input_values)")
                valid = (
                    audio_attention_mask.bool()
                    if audio_attention_mask is not None
                    else torch.ones_like(input_values, dtype=torch.bool)
                )
                m = valid.to(input_values.dtype)
                mean = (input_values * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp_min(1.0)
                var = (((input_values - mean) * m) ** 2).sum(-1, keepdim=True) / m.sum(
                    -1, keepdim=True
                ).clamp_min(1.0)
                states, mask = encoder((input_values - mean) / (var + 1e-7).sqrt() * m, valid)
            m = mask[:, None, :, None].to(states.dtype)
            out.append((states * m).sum(2) / m.sum(2).clamp_min(1.0))
        return out

    @torch.no_grad()
    def text_summary(self, transcripts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) mean-pooled text embeddings and (B,) mask (False for an empty transcript)."""
        tokenizer = self.tokenizer(TEXT_TOKENIZER)
        texts = [t.strip() if isinstance(t, str) else "" for t in transcripts]
        batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=128).to(
            self.device
        )
        hidden = self.text_encoder(**batch).last_hidden_state
        m = batch["attention_mask"][..., None].to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
        return pooled, torch.tensor([bool(t) for t in texts], device=self.device)

    @staticmethod
    def f0_histogram(pitch_hz: torch.Tensor, num_bins: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) F0 in Hz (0 unvoiced, -1 padding) -> (B, num_bins+1) share of frames per bin
        (bin 0: unvoiced) and (B,) mask (False when no frame is voiced)."""
        ids = quantize_f0(pitch_hz, num_bins)
        valid = ids >= 0
        counts = nn.functional.one_hot(ids.clamp_min(0), num_bins + 1).float() * valid[..., None]
        counts = counts.sum(1)
        return counts / counts.sum(-1, keepdim=True).clamp_min(1.0), (ids > 0).any(-1)

    @torch.no_grad()
    def transcribe(self, input_values: torch.Tensor, audio_attention_mask: torch.Tensor | None) -> list[str]:
        """Transcripts from the ASR sub-model (Whisper), one per clip."""
        if getattr(self, "asr", None) is None:
            raise ValueError("this model has no ASR sub-model (asr_config): pass transcripts=[...]")
        lengths = (
            audio_attention_mask.sum(-1).tolist()
            if audio_attention_mask is not None
            else [input_values.shape[-1]] * len(input_values)
        )
        clips = [row[: int(n)].float().cpu().numpy() for row, n in zip(input_values, lengths)]
        fe = _whisper_features(self.config.asr_config.num_mel_bins)
        features = fe(clips, sampling_rate=16000, return_tensors="pt").input_features.to(
            self.device, self.dtype
        )
        ids = self.asr.generate(
            features, attention_mask=torch.ones(features.shape[0], features.shape[-1], device=self.device),
            max_new_tokens=96,
        )  # fmt: skip
        return [t.strip() for t in self.tokenizer(ASR_TOKENIZER).batch_decode(ids, skip_special_tokens=True)]

    def summaries(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pitch_hz: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        transcripts: list[str] | None = None,
    ) -> dict:
        """Everything the frozen parts contribute, in the form the recipe caches."""
        if attention_mask is None:
            attention_mask = torch.ones(
                input_features.shape[:2], dtype=torch.bool, device=input_features.device
            )
        out = {"log_mel": input_features, "log_mel_mask": attention_mask.bool()}
        speech = self.speech_summaries(input_features, attention_mask, input_values, audio_attention_mask)
        for i, s in enumerate(speech):
            out[f"speech_{i}"] = s
        if self.config.text_config is not None:
            if transcripts is None and getattr(self, "asr", None) is not None and input_values is not None:
                transcripts = self.transcribe(input_values, audio_attention_mask)
            if transcripts is not None:
                out["text"], out["text_mask"] = self.text_summary(transcripts)
                out["transcripts"] = list(transcripts)
        if self.config.use_f0 and pitch_hz is not None:
            out["f0_histogram"], out["f0_mask"] = self.f0_histogram(pitch_hz, self.config.f0_bins)
        return out

    # ------------------------------------------------------------------- trainable: nodes -> logits
    def nodes(self, summaries: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, H) node vectors of the configured branches and (B, N) their mask."""
        batch = summaries["log_mel"].shape[0] if "log_mel" in summaries else None
        vectors, masks = [], []
        for name in self.config.branches:
            if name.startswith("speech_"):
                i = int(name.split("_")[1])
                layers = self.feature_stats(name, summaries[name])  # B, L+1, D, standardised
                vec = self.speech_proj[i](self.layer_weights[i](layers[:, :, None])[:, 0])
                mask = torch.ones(layers.shape[0], dtype=torch.bool, device=layers.device)
            elif name == "text":
                if "text" not in summaries:
                    vec, mask = None, None
                else:
                    vec = self.text_proj(self.feature_stats("text", summaries["text"]))
                    mask = summaries["text_mask"].bool()
            elif name == "f0":
                if "f0_histogram" not in summaries:
                    vec, mask = None, None
                else:
                    vec = self.f0_proj(summaries["f0_histogram"] @ self.f0_embedding.weight)
                    mask = summaries["f0_mask"].bool()
            else:  # spectral
                vec = self.spectral(summaries["log_mel"], summaries["log_mel_mask"])
                mask = summaries["log_mel_mask"].sum(-1) >= 16  # 160 ms: one frame after the four poolings
            batch = batch or (vec.shape[0] if vec is not None else None)
            vectors.append(vec)
            masks.append(mask)
        device = self.node_type.device
        vectors = [
            v if v is not None else torch.zeros(batch, self.config.hidden_size, device=device)
            for v in vectors
        ]
        masks = [m if m is not None else torch.zeros(batch, dtype=torch.bool, device=device) for m in masks]
        return torch.stack(vectors, 1) + self.node_type, torch.stack(masks, 1)

    def fuse(self, summaries: dict, labels: torch.Tensor | None = None) -> GraphFusionOutput:
        nodes, mask = self.nodes(summaries)
        present = mask
        p = getattr(self.config, "modality_dropout", 0.0)
        if self.training and p > 0 and mask.shape[1] > 1:
            keep = torch.rand(mask.shape, device=mask.device) >= p
            dropped = mask & keep
            # never every node of a clip: where all would go, the clip keeps what it had
            mask = torch.where(dropped.any(-1, keepdim=True), dropped, mask)
        safe = mask.clone()
        safe[~mask.any(-1), 0] = True  # a clip with no modality at all: one node keeps softmaxes finite
        if self.config.fusion == "concat":
            filled = torch.where(mask[..., None], nodes, self.missing.expand_as(nodes))
            pooled = self.concat_proj(filled.flatten(1))
        else:
            x = nodes
            for block in self.fusion:
                x = block(x, safe)
            m = safe[..., None].to(x.dtype)
            pooled = (x * m).sum(1) / m.sum(1)
        logits = self.classifier(pooled)
        loss = None
        if labels is not None:
            c = self.config
            loss = build_classification_loss(
                c.loss_type, c.class_counts, focal_gamma=c.focal_gamma, vs_gamma=c.vs_gamma, vs_tau=c.vs_tau
            ).to(logits.device)(logits.float(), labels.long())
        return GraphFusionOutput(
            loss=loss, logits=logits, node_mask=present, transcripts=summaries.get("transcripts")
        )

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pitch_hz: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        transcripts: list[str] | None = None,
        labels: torch.Tensor | None = None,
        summaries: dict | None = None,
        **cached,
    ) -> GraphFusionOutput:
        """From audio features (``GraphFusionFeatureExtractor``: log-mel, F0, the waveform for the ASR)
        or from cached ``summaries`` (the recipe's training; also accepted as keyword tensors)."""
        if summaries is None and cached:
            summaries = cached
        if summaries is None:
            if input_features is None:
                raise ValueError("pass input_features (GraphFusionFeatureExtractor) or cached summaries")
            summaries = self.summaries(
                input_features, attention_mask, pitch_hz, input_values, audio_attention_mask, transcripts
            )
        return self.fuse(summaries, labels)

    # ----------------------------------------------------------------------- tokenizers, saving
    def tokenizer(self, kind: str):
        """The ASR or text tokenizer: given at build time, or saved beside the weights."""
        if kind not in self.tokenizers:
            from transformers import AutoTokenizer

            folder = Path(str(getattr(self, "name_or_path", "") or "")) / kind
            if not folder.is_dir():
                raise ValueError(
                    f"no {kind} for this model: build it with GraphFusionForAudioClassification.from_components "
                    f"or load it from a folder that has {kind}/"
                )
            self.tokenizers[kind] = AutoTokenizer.from_pretrained(folder)
        return self.tokenizers[kind]

    def save_pretrained(self, save_directory, *args, **kwargs):
        super().save_pretrained(save_directory, *args, **kwargs)
        for kind, tokenizer in self.tokenizers.items():
            tokenizer.save_pretrained(os.path.join(save_directory, kind))

    @classmethod
    def from_components(
        cls,
        speech_models: list[str],
        labels: list[str],
        text_model: str | None = None,
        asr_model: str | None = None,
        **config_kwargs,
    ):
        """Build from pretrained parts (folders or Hub ids): speech encoders (Whisper / WavLM / ...),
        a BERT-like text encoder and a Whisper ASR model. Returns the model (heads random)."""
        from transformers import AutoConfig, AutoTokenizer, WhisperForConditionalGeneration

        speech_configs, speech_states = [], []
        for path in speech_models:
            config = AutoConfig.from_pretrained(path)
            speech_configs.append(config)
            model = AutoModel.from_pretrained(path)
            # Whisper contributes its encoder only
            encoder = model.get_encoder() if config.model_type == "whisper" else model
            speech_states.append(encoder.state_dict())
        text_config = AutoConfig.from_pretrained(text_model) if text_model else None
        asr_config = AutoConfig.from_pretrained(asr_model) if asr_model else None
        config = GraphFusionConfig(
            speech_configs=speech_configs,
            text_config=text_config,
            asr_config=asr_config,
            labels=labels,
            component_names={
                "speech": [str(p) for p in speech_models],
                "text": str(text_model) if text_model else None,
                "asr": str(asr_model) if asr_model else None,
            },
            **config_kwargs,
        )
        model = cls(config)
        for encoder, state in zip(model.speech_encoders, speech_states):
            encoder.model.load_state_dict(state)
        if text_model:
            model.text_encoder.load_state_dict(AutoModel.from_pretrained(text_model).state_dict())
            model.tokenizers[TEXT_TOKENIZER] = AutoTokenizer.from_pretrained(text_model)
        if asr_model:
            model.asr.load_state_dict(WhisperForConditionalGeneration.from_pretrained(asr_model).state_dict())
            model.tokenizers[ASR_TOKENIZER] = AutoTokenizer.from_pretrained(asr_model)
        model.freeze_backbones()
        return model.eval()


def encoder_width(config) -> int:
    return getattr(config, "d_model", None) or config.hidden_size


__all__ = ["GraphFusionForAudioClassification", "GraphFusionOutput"]
