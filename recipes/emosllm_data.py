"""EmoSLLM's ASR training clips: the ASR corpus's own, joined by ``--asr_extra_datasets``, with
extra clips that say a held-out ASR prompt refused."""

from __future__ import annotations

import datasets
from serhub.recipes.data import load_dataset_dict
from serhub.recipes.logs import get_logger

logger = get_logger("emosllm")


def asr_training_clips(asr, curriculum, audio, training_args):
    """The ASR corpus's training split, joined by the ``--asr_extra_datasets``' (their audio and
    transcripts; clips without a transcript left out)."""
    train = asr[curriculum.asr_train_split].cast_column("audio", audio)
    if not curriculum.asr_extra_datasets:
        return train
    parts = [train.select_columns(["audio", "transcript"])]
    for name in curriculum.asr_extra_datasets:
        with training_args.main_process_first(desc=f"ASR data {name}"):
            extra = load_dataset_dict(name)
        if (
            curriculum.asr_train_split not in extra
            or "transcript" not in extra[curriculum.asr_train_split].column_names
        ):
            raise ValueError(
                f"--asr_extra_datasets {name}: expected a {curriculum.asr_train_split!r} split with a "
                f"'transcript' column, found splits {list(extra)}"
            )
        clips = (
            extra[curriculum.asr_train_split]
            .select_columns(["audio", "transcript"])
            .cast_column("audio", audio)
        )
        clips = clips.filter(lambda t: bool(t and t.strip()), input_columns="transcript")
        check_asr_leak(name, clips["transcript"], asr[curriculum.asr_eval_split]["transcript"])
        parts.append(clips)
    joined = datasets.concatenate_datasets(parts)
    logger.info("ASR training clips: %s (%d)", " + ".join(str(len(p)) for p in parts), len(joined))
    return joined


def check_asr_leak(name: str, transcripts: list[str], held_out: list[str]) -> None:
    """The extra ASR data must not say the held-out ASR prompts: refused, with an example."""
    from serhub.metrics.asr import normalize_text

    held_out = {normalize_text(t) for t in held_out}
    leaked = sorted({t for t in transcripts if normalize_text(t) in held_out})
    if leaked:
        raise ValueError(
            f"--asr_extra_datasets {name}: {len(leaked)} training clip(s) say a held-out ASR prompt (e.g. "
            f"{leaked[0]!r}); the held-out WER would be scored on sentences seen in training. Remove them "
            "from the extra data or choose another --asr_eval_split"
        )


__all__ = ["asr_training_clips", "check_asr_leak"]
