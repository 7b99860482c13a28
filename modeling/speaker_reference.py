"""The enrolled speaker of a model that reads prosody relative to its speaker (``speaker_prosody``):
the speech classifier's head and the audio-LLMs' prosody label scores share it.

The model holds ``self.prosody`` (a module with ``reference_of``, ``layers.SpeakerRelativeProsody`` or
``layers.ProsodyLabelScores``). ``enroll_speaker`` keeps the mean of a speaker's reference clips'
prosody numbers until ``forget_speaker``; never saved with the model. Without one, the training
voices' average reference is used, with one warning per model saying how to do better.
"""

from __future__ import annotations

import torch
from transformers.utils import logging

logger = logging.get_logger(__name__)

NO_PROSODY = (
    "this model reads the clip's prosody relative to its speaker (config.speaker_prosody): pass "
    "prosody_values, which its feature extractor returns (SpeechEmotionFeatureExtractor with return_prosody=True)"
)


class SpeakerReferenceMixin:
    """``_prosody_reference`` (the enrolled speaker's, or None) and what reads it."""

    _prosody_reference: torch.Tensor | None = None
    _warned_no_reference = False

    def _enroll_prosody(self, prosody_values: torch.Tensor | None) -> None:
        self._prosody_reference = self.prosody.reference_of(prosody_values)

    @torch.no_grad()
    def enroll_speaker(self, prosody_values: torch.Tensor | None = None, **inputs) -> None:
        """Read every following clip's prosody relative to one speaker's: the mean prosody numbers of
        their reference clips (a few recordings, a neutral one preferably; pass everything the feature
        extractor returns for them, ``return_prosody=True``; only ``prosody_values`` is read). Lasts
        until :meth:`forget_speaker`; never saved. Only for a model trained with ``speaker_prosody``."""
        if getattr(self, "prosody", None) is None:
            raise ValueError(
                "this model was trained without a speaker reference (config.speaker_prosody is off): "
                "enrolment would change nothing; train with --speaker_prosody true to use it"
            )
        self._enroll_prosody(prosody_values)

    def forget_speaker(self) -> None:
        """Back to the training voices' average reference (undoes :meth:`enroll_speaker`)."""
        self._prosody_reference = None

    def _speaker_reference(
        self, prosody_values: torch.Tensor | None, prosody_reference: torch.Tensor | None
    ) -> torch.Tensor | None:
        """The reference the clips' prosody is read against: the one passed, else the enrolled
        speaker's, else None (the training voices' average; warned once). Refuses missing values."""
        if prosody_values is None:
            raise ValueError(NO_PROSODY)
        if prosody_reference is None:
            prosody_reference = self._prosody_reference
        if prosody_reference is None and not self._warned_no_reference:
            logger.warning(
                "no speaker reference: the prosody is read relative to the training voices' average (or, for a "
                "model trained with prosody_reference_dropout, not at all). Enrol the speaker on a few of their clips (model.enroll_speaker(**feature_extractor(clips)), a neutral "
                "one preferably) for the figures the model was trained for"
            )
            self._warned_no_reference = True
        return prosody_reference


__all__ = ["NO_PROSODY", "SpeakerReferenceMixin"]
