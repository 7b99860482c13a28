"""Configuration of an ensemble of serhub (or any transformers) emotion classifiers (ABHINAYA's vote)."""

from __future__ import annotations

from transformers import PreTrainedConfig

VOTINGS = ("hard", "soft")
INPUTS = ("audio", "transcript")


class EnsembleConfig(PreTrainedConfig):
    r"""Member models referenced by path or Hub id, and how their answers are combined.

    Args:
        members: one dict per member: ``{"name": str, "model": path or Hub id, "input": "audio" |
            "transcript"}``. Audio members are audio classifiers (``AutoModelForAudioClassification``:
            speech classifiers, audio-LLMs, graph fusion); transcript members are text classifiers
            (``AutoModelForSequenceClassification``) that read the transcript of the clip.
        voting: "hard" (majority of the members' labels; a tie goes to ``tie_breaker``, ABHINAYA) or
            "soft" (the mean of the members' probabilities).
        tie_breaker: the member whose label wins a tie of the hard vote (default: the first member).
        asr_model: the speech recogniser that writes the transcripts once for every transcript member
            (a Whisper folder or Hub id; ``offline:whisper-tiny.en`` is the converted offline one).
        labels: the ensemble's label set, in class-id order (every member must know each of them).
    """

    model_type = "ser_ensemble"

    def __init__(
        self,
        members: list[dict] | None = None,
        voting: str = "hard",
        tie_breaker: str | None = None,
        asr_model: str | None = None,
        labels: list[str] | None = None,
        sampling_rate: int = 16000,
        **kwargs,
    ):
        members = [dict(m) for m in members or []]
        labels = list(labels or [])
        if voting not in VOTINGS:
            raise ValueError(f"voting must be one of {VOTINGS}, got {voting!r}")
        names = []
        for i, member in enumerate(members):
            if "model" not in member:
                raise ValueError(f"member {i} has no 'model' (a folder or Hub id): {member}")
            member.setdefault("name", f"member{i}")
            member.setdefault("input", "audio")
            if member["input"] not in INPUTS:
                raise ValueError(
                    f"member {member['name']!r}: input must be one of {INPUTS}, got {member['input']!r}"
                )
            names.append(member["name"])
        if len(set(names)) != len(names):
            raise ValueError(f"member names must be unique, got {names}")
        if tie_breaker is not None and tie_breaker not in names:
            raise ValueError(f"tie_breaker {tie_breaker!r} is not a member; members: {names}")
        if labels and "id2label" not in kwargs:
            kwargs["id2label"] = dict(enumerate(labels))
            kwargs["label2id"] = {label: i for i, label in enumerate(labels)}
        super().__init__(**kwargs)
        self.members = members
        self.voting = voting
        self.tie_breaker = tie_breaker if tie_breaker is not None else (names[0] if names else None)
        self.asr_model = asr_model
        self.labels = labels
        self.sampling_rate = sampling_rate


__all__ = ["EnsembleConfig"]
