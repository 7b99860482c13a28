"""Configuration of the graph-fusion emotion classifier (arXiv:2506.02088: several speech encoders,
text, quantised F0 and a spectral branch as nodes of a graph, fused by graph attention)."""

from __future__ import annotations

from transformers import PreTrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from .configuration_speech_emotion import audio_config_from

FUSIONS = ("gat", "cross_attention", "concat")


def _config(value):
    if value is None or isinstance(value, PreTrainedConfig):
        return value
    value = dict(value)
    return CONFIG_MAPPING[value.pop("model_type")](**value)


class GraphFusionConfig(PreTrainedConfig):
    r"""Args:
    speech_configs: one config (or dict) per frozen speech encoder (any the speech classifier takes:
        Whisper, WavLM, HuBERT, wav2vec2, data2vec-audio); each becomes a node ``speech_<i>``
        (weighted layer sum, mean over frames). Paper: Whisper large-v3, WavLM, HuBERT, wav2vec2.
    text_config: the frozen text encoder (a BERT-like config; paper: RoBERTa, offline default:
        all-MiniLM-L6-v2), mean-pooled over the transcript: node ``text``. None: no text branch.
    asr_config: a Whisper (encoder-decoder) config: the model transcribes the audio itself when no
        transcript is given, so ``pipeline("audio-classification")`` needs only audio. None: transcripts
        must be passed (or the text node is masked).
    use_f0, f0_bins, f0_embedding_size: the prosody node: frame F0 -> mel -> ``f0_bins`` learnable
        embedding bins (+ one for unvoiced frames), mean-pooled. Audio without voiced frames masks it.
    use_spectral, spectral_channels: the spectral node: a small log-mel CNN trained from scratch
        (standing in for CED-Small, which has no offline weights).
    branches: the nodes in use (default: every one configured), e.g. ``["speech_0", "f0"]`` for an ablation.
    fusion: "gat" (modalities as a fully connected graph, multi-head GATv2 attention), "cross_attention"
        (HCAM-like: every node attends to the others with scaled dot-product attention) or "concat".
    hidden_size, fusion_heads, fusion_layers, mlp_size, dropout: the fusion and the SwiGLU classifier.
    modality_dropout: in training, each present node is masked with this probability (one always
        stays), so the fusion does not lean on one modality and copes when one is missing.
    labels, loss_type, class_counts, ...: as the speech classifier (weighted CE by default, as the paper).
    speaker_prosody: one more node, ``prosody``: ten measured prosody numbers of the clip
        (``prosody.measure_prosody``; the feature extractor gives them as ``prosody_values`` with
        ``return_prosody``) minus the speaker's reference (``enroll_speaker``), standardised, through
        a small MLP. The F0 node reads absolute pitch; this one reads it against the speaker's own.
    """

    model_type = "ser_graph_fusion"

    def __init__(
        self,
        speech_configs: list | None = None,
        text_config=None,
        asr_config=None,
        use_f0: bool = True,
        f0_bins: int = 256,
        f0_embedding_size: int = 64,
        use_spectral: bool = True,
        spectral_channels: int = 32,
        n_mels: int = 80,
        branches: list[str] | None = None,
        fusion: str = "gat",
        hidden_size: int = 256,
        fusion_heads: int = 4,
        fusion_layers: int = 2,
        mlp_size: int = 256,
        dropout: float = 0.1,
        modality_dropout: float = 0.0,
        labels: list[str] | None = None,
        loss_type: str = "weighted_ce",
        class_counts: list[int] | None = None,
        focal_gamma: float = 2.0,
        vs_gamma: float = 0.2,
        vs_tau: float = 1.0,
        component_names: dict | None = None,
        speaker_prosody: bool = False,
        **kwargs,
    ):
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if hidden_size % fusion_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by fusion_heads={fusion_heads}")
        self.speech_configs = [audio_config_from(c) for c in (speech_configs or [])]
        self.text_config = _config(text_config)
        self.asr_config = _config(asr_config)
        self.use_f0 = use_f0
        self.f0_bins = f0_bins
        self.f0_embedding_size = f0_embedding_size
        self.use_spectral = use_spectral
        self.spectral_channels = spectral_channels
        self.n_mels = n_mels
        self.speaker_prosody = bool(speaker_prosody)
        available = self.available_branches()
        if not available:
            raise ValueError("a graph-fusion model needs at least one branch (speech, text, f0 or spectral)")
        branches = list(branches) if branches else available
        unknown = [b for b in branches if b not in available]
        if unknown:
            raise ValueError(f"branches {unknown} are not configured; available: {available}")
        self.branches = branches
        self.fusion = fusion
        self.hidden_size = hidden_size
        self.fusion_heads = fusion_heads
        self.fusion_layers = fusion_layers
        self.mlp_size = mlp_size
        self.dropout = dropout
        if not 0.0 <= modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
        self.modality_dropout = modality_dropout
        self.labels = list(labels or [])
        self.loss_type = loss_type
        self.class_counts = list(class_counts) if class_counts is not None else None
        self.focal_gamma = focal_gamma
        self.vs_gamma = vs_gamma
        self.vs_tau = vs_tau
        self.component_names = dict(component_names or {})  # what each part was built from (the card)
        if self.labels and "id2label" not in kwargs:
            kwargs["id2label"] = dict(enumerate(self.labels))
            kwargs["label2id"] = {label: i for i, label in enumerate(self.labels)}
        super().__init__(**kwargs)

    def available_branches(self) -> list[str]:
        names = [f"speech_{i}" for i in range(len(self.speech_configs))]
        if self.text_config is not None:
            names.append("text")
        if self.use_f0:
            names.append("f0")
        if self.use_spectral:
            names.append("spectral")
        if getattr(self, "speaker_prosody", False):
            names.append("prosody")
        return names

    def to_dict(self):
        out = super().to_dict()
        out["speech_configs"] = [c.to_dict() for c in self.speech_configs]
        for key in ("text_config", "asr_config"):
            value = getattr(self, key)
            out[key] = value.to_dict() if value is not None else None
        return out


__all__ = ["FUSIONS", "GraphFusionConfig"]
