"""An ensemble of emotion classifiers as one transformers model (ABHINAYA's majority vote).

    ensemble = EnsembleForAudioClassification.from_members(
        [{"name": "speech", "model": "outputs/ssl_classifier"},
         {"name": "whisper_llm", "model": "outputs/whisper_llm"},
         {"name": "text", "model": "outputs/text_llm", "input": "transcript"}],
        voting="hard", tie_breaker="speech", asr_model="offline:whisper-tiny.en")
    ensemble.save_pretrained("outputs/ensemble")     # the config and code: members stay where they are
    pipeline("audio-classification", model="outputs/ensemble", trust_remote_code=True)

The ensemble's own input is the 16 kHz waveform (its feature extractor only pads it); each audio
member gets its own features (a Whisper log-mel, normalised samples, ...) from its own feature
extractor, and the transcript members read one shared transcript per clip, written once by
``asr_model`` (or given as ``transcripts=``). The output logits are log-probabilities: for a soft vote
the log of the members' mean probabilities, for a hard vote the log of the vote shares (the
tie-breaker's label gets a nudge of 1e-3 of a vote when it is among the tied), so
``pipeline("audio-classification")`` shows the vote shares as scores.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.dynamic_module_utils import custom_object_save
from transformers.utils import ModelOutput

from .configuration_ensemble import EnsembleConfig
from .feature_extraction_speech_emotion import SpeechEmotionFeatureExtractor
from .remote_code import check_model, trust_remote_code_for

TIE_NUDGE = 1e-3  # of one vote: decides a tie, never a majority


# Whisper loops on silence ("Bye. Bye. Bye. ..." up to its 448 tokens, minutes per batch on a CPU): a
# transcript is capped at what fast speech holds, ~4 tokens per second, with room to spare
TOKENS_PER_SECOND, TOKENS_EXTRA = 6, 10


def transcript_token_limit(clips: list[np.ndarray], sampling_rate: int = 16000) -> int:
    """The most new tokens a transcript of the longest of ``clips`` may take (at most Whisper's 440)."""
    seconds = max((len(c) for c in clips), default=0) / sampling_rate
    return min(440, TOKENS_EXTRA + int(np.ceil(TOKENS_PER_SECOND * seconds)))


WHISPER_PROMPT_TOKENS = 4  # <|startoftranscript|>, language, task, <|notimestamps|>: max_length counts them


def transcript_generate_kwargs(clips: list[np.ndarray], sampling_rate: int = 16000) -> dict:
    """``generate()`` arguments for Whisper transcripts of ``clips`` through the ASR pipeline: greedy
    decoding (the pipeline's default is a 5-beam search, several times slower on a CPU and no better on
    serhub's corpora; ``benchmarks/asr_decoding.py``) and at most ``transcript_token_limit`` new tokens,
    given as ``max_length`` (``max_new_tokens`` beside a checkpoint's ``max_length`` warns every batch)."""
    return {
        "num_beams": 1,
        "max_length": WHISPER_PROMPT_TOKENS + transcript_token_limit(clips, sampling_rate),
    }


@dataclass
class EnsembleOutput(ModelOutput):
    """``logits`` (B, C) log-probabilities of the ensemble; ``member_probabilities`` (B, M, C) in the
    ensemble's label order; ``transcripts``: what the transcript members read (None without any)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    member_probabilities: torch.Tensor | None = None
    transcripts: list[str] | None = None


def hard_vote(member_probabilities: torch.Tensor, tie_breaker: int) -> torch.Tensor:
    """(B, M, C) probabilities -> (B, C) vote shares: each member votes for its top label; among
    labels with the most votes, the tie-breaker member's label wins (if it is among them)."""
    b, m, c = member_probabilities.shape
    votes = nn.functional.one_hot(member_probabilities.argmax(-1), c).sum(1).to(member_probabilities.dtype)
    breaker = nn.functional.one_hot(member_probabilities[:, tie_breaker].argmax(-1), c).to(votes.dtype)
    tied = votes == votes.max(-1, keepdim=True).values
    votes = votes + TIE_NUDGE * breaker * tied
    return votes / votes.sum(-1, keepdim=True)


def soft_vote(member_probabilities: torch.Tensor) -> torch.Tensor:
    """(B, M, C) -> (B, C): the mean of the members' probabilities."""
    return member_probabilities.mean(1)


def resolve_reference(reference: str, base: str | os.PathLike | None) -> str:
    """A member reference as a loadable string: absolute paths and Hub ids as they are; a relative
    path is looked for beside the ensemble's folder first, then from the working directory."""
    from .offline_assets import resolve_pretrained

    path = Path(reference)
    if not path.is_absolute() and base is not None and (Path(base) / path).exists():
        return str(Path(base) / path)
    return resolve_pretrained(reference)  # "offline:<name>" -> its converted folder; others unchanged


class EnsembleForAudioClassification(PreTrainedModel):
    config_class = EnsembleConfig
    base_model_prefix = "ensemble"
    main_input_name = "input_values"

    def __init__(self, config: EnsembleConfig):
        super().__init__(config)
        self.members = nn.ModuleDict()
        self.member_feature_extractors: dict = {}
        self.member_tokenizers: dict = {}
        self.member_label_index: dict = {}
        self._asr = None
        self.post_init()

    # --------------------------------------------------------------------------- building
    @classmethod
    def from_members(
        cls,
        members: list[dict],
        voting: str = "hard",
        tie_breaker: str | None = None,
        asr_model: str | None = None,
        labels: list[str] | None = None,
        base: str | os.PathLike | None = None,
    ) -> EnsembleForAudioClassification:
        """Load the members and check that they agree on the labels (the first member's order
        unless ``labels`` is given)."""
        config = EnsembleConfig(members, voting, tie_breaker, asr_model, labels)
        model = cls(config)
        model.load_members(base)
        if not config.labels:
            first = model.members[config.members[0]["name"]].config.id2label
            config.labels = [first[i] for i in range(len(first))]
            config.id2label = dict(enumerate(config.labels))
            config.label2id = {label: i for i, label in enumerate(config.labels)}
            model._index_labels()
        return model.eval()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """The config (and code) from the folder; every member from where the config points."""
        for unused in ("trust_remote_code", "_from_auto", "_from_pipeline", "device_map", "dtype"):
            kwargs.pop(unused, None)
        config = kwargs.pop("config", None) or EnsembleConfig.from_pretrained(
            pretrained_model_name_or_path, **kwargs
        )
        model = cls(config)
        base = pretrained_model_name_or_path if Path(str(pretrained_model_name_or_path)).is_dir() else None
        model.load_members(base)
        return model.eval()

    def load_members(self, base=None) -> None:
        from transformers import (
            AutoFeatureExtractor,
            AutoModelForAudioClassification,
            AutoModelForSequenceClassification,
            AutoTokenizer,
        )

        if not self.config.members:
            raise ValueError("an ensemble needs at least one member")
        for member in self.config.members:
            try:
                where = resolve_reference(member["model"], base)
                # members are named by the config: serhub's own or transformers' types only, run with the
                # installed classes (a member's own files only where serhub is not installed)
                trust = trust_remote_code_for(check_model(where))
                if member["input"] == "audio":
                    self.members[member["name"]] = AutoModelForAudioClassification.from_pretrained(
                        where, trust_remote_code=trust
                    ).eval()
                    self.member_feature_extractors[member["name"]] = AutoFeatureExtractor.from_pretrained(
                        where, trust_remote_code=trust
                    )
                else:
                    self.members[member["name"]] = AutoModelForSequenceClassification.from_pretrained(
                        where, trust_remote_code=trust
                    ).eval()
                    self.member_tokenizers[member["name"]] = AutoTokenizer.from_pretrained(where)
            except (OSError, ValueError) as error:
                raise ValueError(
                    f"ensemble member {member['name']!r} ({member['model']}) cannot be loaded: {error}"
                ) from error
        self.requires_grad_(False)
        if self.config.labels:
            self._index_labels()

    def _index_labels(self) -> None:
        """Each member's class ids in the ensemble's label order (members may order labels differently)."""
        for name, member in self.members.items():
            known = {label.lower(): i for i, label in member.config.id2label.items()}
            missing = [label for label in self.config.labels if label.lower() not in known]
            if missing:
                raise ValueError(
                    f"ensemble member {name!r} does not know the labels {missing} "
                    f"(it has {list(member.config.id2label.values())}); members must share the label set"
                )
            self.member_label_index[name] = [int(known[label.lower()]) for label in self.config.labels]

    @property
    def feature_extractor(self) -> SpeechEmotionFeatureExtractor:
        """The ensemble's own input: raw 16 kHz samples, padded, with an attention mask."""
        return SpeechEmotionFeatureExtractor(feature_type="waveform", do_normalize=False)

    def save_pretrained(self, save_directory, **kwargs) -> None:
        """The config (members by reference, never their weights), the code, and the ensemble's
        feature extractor, so the folder works in ``pipeline("audio-classification")``."""
        os.makedirs(save_directory, exist_ok=True)
        if self._auto_class is not None:
            custom_object_save(self, save_directory, config=self.config)
        self.config.save_pretrained(save_directory)
        self.feature_extractor.save_pretrained(save_directory)

    # ------------------------------------------------------------------------- inference
    def transcribe(self, clips: list[np.ndarray]) -> list[str]:
        """One transcript per clip from ``config.asr_model`` (loaded on first use)."""
        if self.config.asr_model is None:
            raise ValueError(
                "this ensemble has transcript members but no asr_model: set one (e.g. "
                "'offline:whisper-tiny.en') or pass transcripts=[...]"
            )
        if self._asr is None:
            from transformers import pipeline

            self._asr = pipeline(
                "automatic-speech-recognition",
                model=resolve_reference(self.config.asr_model, None),
                device=self.device,
            )
            if self._asr.tokenizer.pad_token is None:  # batched decoding pads with the end token
                self._asr.tokenizer.pad_token = self._asr.tokenizer.eos_token
        outputs = self._asr(
            [c.astype(np.float32) for c in clips],
            batch_size=len(clips),
            generate_kwargs=transcript_generate_kwargs(clips),
        )
        return [r["text"].strip() for r in outputs]

    def member_probabilities(self, clips: list[np.ndarray], transcripts: list[str] | None = None):
        """(B, M, C) probabilities of every member, in the ensemble's label order, and the transcripts."""
        columns = []
        needs_text = any(m["input"] == "transcript" for m in self.config.members)
        if needs_text and transcripts is None:
            transcripts = self.transcribe(clips)
        for member in self.config.members:
            name = member["name"]
            net = self.members[name]
            if member["input"] == "audio":
                inputs = self.member_feature_extractors[name](
                    clips, sampling_rate=self.config.sampling_rate, return_tensors="pt", padding=True
                )
            else:
                inputs = self.member_tokenizers[name](list(transcripts), return_tensors="pt", padding=True)
            logits = net(**{k: v.to(self.device) for k, v in inputs.items()}).logits.float()
            columns.append(logits.softmax(-1)[:, self.member_label_index[name]])
        probabilities = torch.stack(columns, 1)
        return probabilities / probabilities.sum(-1, keepdim=True), transcripts

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        transcripts: list[str] | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> EnsembleOutput:
        """input_values: (B, N) 16 kHz samples (padded; ``attention_mask`` marks the real ones)."""
        if input_values.dim() == 1:
            input_values = input_values[None]
        lengths = (
            attention_mask.sum(-1).tolist()
            if attention_mask is not None
            else [input_values.shape[-1]] * len(input_values)
        )
        clips = [row[: int(n)].float().cpu().numpy() for row, n in zip(input_values, lengths)]
        with torch.no_grad():
            probabilities, transcripts = self.member_probabilities(clips, transcripts)
        if self.config.voting == "hard":
            names = [m["name"] for m in self.config.members]
            combined = hard_vote(probabilities, names.index(self.config.tie_breaker))
        else:
            combined = soft_vote(probabilities)
        logits = combined.clamp_min(1e-12).log()
        loss = nn.functional.nll_loss(logits, labels.long()) if labels is not None else None
        return EnsembleOutput(
            loss=loss, logits=logits, member_probabilities=probabilities, transcripts=transcripts
        )


__all__ = ["EnsembleForAudioClassification", "EnsembleOutput", "hard_vote", "soft_vote"]
