"""What the graph-fusion classifier's frozen parts contribute: every branch's *summary*, in the form
the recipe caches (per-layer frame means of each speech encoder, the transcript's mean text embedding,
the F0-bin histogram, the log-mel frames). ``GraphFusionSummaries`` is a mixin of
``GraphFusionForAudioClassification``: it reads the model's ``speech_encoders``, ``text_encoder``,
``asr``, ``config`` and ``tokenizer``."""

from __future__ import annotations

import functools

import torch
from torch import nn

from .assembly_graph_fusion import ASR_TOKENIZER, TEXT_TOKENIZER
from .prosody import quantize_f0


@functools.lru_cache(maxsize=2)
def _whisper_features(n_mels: int):
    """The ASR sub-model's own 30-s log-mel input (built once: its mel filters are not free)."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=n_mels)


def standardize_waveform(
    input_values: torch.Tensor, audio_attention_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S) waveform -> zero mean, unit variance per clip over its valid samples (padding stays 0),
    and the (B, S) bool mask of valid samples: what WavLM / HuBERT / wav2vec2 expect."""
    valid = (
        audio_attention_mask.bool()
        if audio_attention_mask is not None
        else torch.ones_like(input_values, dtype=torch.bool)
    )
    m = valid.to(input_values.dtype)
    mean = (input_values * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp_min(1.0)
    var = (((input_values - mean) * m) ** 2).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp_min(1.0)
    return (input_values - mean) / (var + 1e-7).sqrt() * m, valid


class GraphFusionSummaries:
    """Frozen parts -> summaries (no gradients): the half of the model the recipe runs once."""

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
                states, mask = encoder(*standardize_waveform(input_values, audio_attention_mask))
            m = mask[:, None, :, None].to(states.dtype)  # B, 1, T', 1
            out.append((states * m).sum(2) / m.sum(2).clamp_min(1.0))  # B, L+1, T', D -> B, L+1, D
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
            max_length=100,  # 96 tokens after Whisper's prompt (max_new_tokens beside the config's max_length warns)
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


__all__ = ["GraphFusionSummaries", "standardize_waveform"]
