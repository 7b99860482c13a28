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

The parts: ``summaries_graph_fusion`` (frozen parts -> summaries), ``nodes_graph_fusion`` (the
log-mel CNN, the summaries' standardisation), ``layers_graph_fusion`` (GATv2, cross-attention, the
SwiGLU head), ``assembly_graph_fusion`` (building from pretrained parts). All are relative imports, so
``save_pretrained`` copies them into the checkpoint with this file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from .assembly_graph_fusion import ASR_TOKENIZER, TEXT_TOKENIZER, build_from_components  # noqa: F401
from .configuration_graph_fusion import GraphFusionConfig
from .layers import SpeakerRelativeProsody, WeightedLayerSum
from .layers_graph_fusion import FUSION_BLOCKS, CrossModalAttention, DenseGATv2, SwiGLUClassifier  # noqa: F401
from .losses import build_classification_loss
from .nodes_graph_fusion import SpectralCNN, SummaryStandardizer
from .speaker_reference import SpeakerReferenceMixin
from .speech_encoder import SpeechEncoder
from .summaries_graph_fusion import GraphFusionSummaries

# F401: ASR_TOKENIZER, TEXT_TOKENIZER, CrossModalAttention and DenseGATv2 stay importable from here


@dataclass
class GraphFusionOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    node_mask: torch.Tensor | None = None  # (B, N): which modality nodes each clip had
    transcripts: list[str] | None = None


class GraphFusionForAudioClassification(SpeakerReferenceMixin, GraphFusionSummaries, PreTrainedModel):
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
        if getattr(config, "speaker_prosody", False):
            self.prosody = SpeakerRelativeProsody(0, 0)
            self.prosody_proj = nn.Sequential(
                nn.Linear(self.prosody.output_size, h), nn.GELU(), nn.Linear(h, h)
            )
        self.feature_stats = SummaryStandardizer(summary_shapes(config))
        self.node_type = nn.Parameter(torch.zeros(len(config.branches), h))  # which modality a node is
        self.missing = nn.Parameter(
            torch.zeros(len(config.branches), h)
        )  # concat's stand-in for a masked node
        block = FUSION_BLOCKS.get(config.fusion)
        self.fusion = nn.ModuleList(
            block(h, config.fusion_heads, config.dropout) for _ in range(config.fusion_layers)
        ) if block else None  # fmt: skip
        if config.fusion == "concat":
            self.concat_proj = nn.Linear(len(config.branches) * h, h)
        self.classifier = SwiGLUClassifier(h, config.mlp_size, len(config.labels), config.dropout)
        self.tokenizers: dict = {}
        self.post_init()
        self.draw_trainable_parts()
        self.freeze_backbones()

    def trainable_parts(self) -> dict[str, list[nn.Module]]:
        """The parts trained from scratch, by the name their initial weights are drawn under (a node's
        parts under its branch name)."""
        parts = {f"speech_{i}": [p] for i, p in enumerate(self.speech_proj)}
        for name, attributes in {
            "text": ("text_proj",),
            "f0": ("f0_embedding", "f0_proj"),
            "spectral": ("spectral",),
            "prosody": ("prosody_proj",),
            "fusion": ("fusion",),
            "concat": ("concat_proj",),
            "classifier": ("classifier",),
        }.items():
            found = [getattr(self, a) for a in attributes if getattr(self, a, None) is not None]
            if found:
                parts[name] = found
        return parts

    @torch.no_grad()
    def draw_trainable_parts(self) -> None:
        """Draw each trainable part's initial weights from a stream of its own, seeded by the global seed
        (``torch.initial_seed()``, set by the recipe's ``--seed``) and the part's name, so that one part
        starts from the same weights whatever other parts the config builds: an ablation row, or a model
        with the prosody node, shares its other nodes' and its head's start with the full model."""
        import zlib

        base = torch.initial_seed()
        if self.node_type.is_meta:  # built to be loaded: the weights come from the checkpoint
            return

        def seed_of(name: str) -> int:
            return (base + zlib.crc32(name.encode())) % 2**63

        for name, modules in self.trainable_parts().items():
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed_of(name))
                for module in modules:
                    for m in module.modules():
                        if hasattr(m, "reset_parameters"):
                            m.reset_parameters()
                        if isinstance(m, (nn.Linear, nn.Embedding)):
                            self._init_weights(m)
        for i, branch in enumerate(self.config.branches):
            generator = torch.Generator().manual_seed(seed_of(f"node_type.{branch}"))
            self.node_type[i].normal_(0.0, 0.02, generator=generator)

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

    # frozen parts -> summaries: speech_summaries, text_summary, f0_histogram, transcribe, summaries
    # (GraphFusionSummaries, summaries_graph_fusion.py)

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
            elif name == "prosody":
                values = summaries.get("prosody_values")
                reference = self._speaker_reference(values, summaries.get("prosody_reference"))
                vec = self.prosody_proj(self.prosody.relative(values, reference))
                mask = torch.ones(vec.shape[0], dtype=torch.bool, device=vec.device)
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
        prosody_values: torch.Tensor | None = None,
        prosody_reference: torch.Tensor | None = None,
        **cached,
    ) -> GraphFusionOutput:
        """From audio features (``GraphFusionFeatureExtractor``: log-mel, F0, the waveform for the ASR)
        or from cached ``summaries`` (the recipe's training; also accepted as keyword tensors).
        ``prosody_values`` (B, 10) and ``prosody_reference`` (B, 10): the prosody node's numbers and
        each clip's speaker reference (``config.speaker_prosody``; by default the enrolled speaker's)."""
        if summaries is None and cached:
            summaries = cached
        if summaries is None:
            if input_features is None:
                raise ValueError("pass input_features (GraphFusionFeatureExtractor) or cached summaries")
            summaries = self.summaries(
                input_features, attention_mask, pitch_hz, input_values, audio_attention_mask, transcripts
            )
        given = {"prosody_values": prosody_values, "prosody_reference": prosody_reference}
        summaries = {**summaries, **{k: v for k, v in given.items() if v is not None}}
        return self.fuse(summaries, labels)

    # enroll_speaker / forget_speaker: the prosody node's reference (SpeakerReferenceMixin)

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
        return build_from_components(cls, speech_models, labels, text_model, asr_model, **config_kwargs)


def encoder_width(config) -> int:
    return getattr(config, "d_model", None) or config.hidden_size


def summary_shapes(config: GraphFusionConfig) -> dict[str, tuple[int, ...]]:
    """The standardised summaries' shapes: (L+1, D) per speech encoder, (D,) for the text."""
    shapes = {
        f"speech_{i}": (c.num_hidden_layers + 1, encoder_width(c))
        for i, c in enumerate(config.speech_configs)
    }
    if config.text_config is not None:
        shapes["text"] = (config.text_config.hidden_size,)
    return shapes


__all__ = ["GraphFusionForAudioClassification", "GraphFusionOutput"]
