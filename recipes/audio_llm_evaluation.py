"""Evaluation of the audio-LLM recipes (emosllm, descriptors, whisper_llm) on cached splits: SER in
each classification mode (label_logits / transcript_conditioned / descriptor_conditioned), SER from the
transcript alone, WER of greedy transcription, and the connector's audio-token health check.

``audio_llm_common`` re-exports these helpers, so the collator they build is imported inside each
function (a module-level import of ``audio_llm_common`` here would be circular)."""

from __future__ import annotations

import torch
from serhub.metrics.asr import word_error_rate
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics, speaker_scores
from serhub.modeling.prompting_audio_llm import ASR_PREFIX

from .logs import get_logger

logger = get_logger("audio_llm")


def batches(dataset, size: int, desc: str | None = None):
    """Rows of ``dataset`` in lists of ``size``; with ``desc``, a progress bar (clips) on the way."""
    from tqdm.auto import tqdm

    with tqdm(total=len(dataset), desc=desc, unit="clip", disable=desc is None) as bar:
        for start in range(0, len(dataset), size):
            rows = [dataset[i] for i in range(start, min(start + size, len(dataset)))]
            yield rows
            bar.update(len(rows))


@torch.no_grad()
def evaluate_ser(
    model,
    processor,
    dataset,
    labels: list[str],
    modes=("label_logits",),
    batch_size: int = 16,
    bootstrap: int = 0,
    speakers: list[str] | None = None,
) -> dict:
    """SER metrics of the model in each classification mode, on a cached split; with ``speakers``
    (one id per row) also each speaker's macro-F1 (``per_speaker_macro_f1``)."""
    from .audio_llm_common import MODE_TASKS, CachedAudioLLMCollator

    results = {}
    for mode in modes:
        classifier = model.as_classifier(mode)
        task = MODE_TASKS.get(mode, "ser")
        collate = CachedAudioLLMCollator(
            processor,
            task,
            labels,
            with_answers=False,
            fixed_prompt=True,
            answer_prefix=ASR_PREFIX if task != "ser" else None,
        )
        predictions, references = [], []
        for rows in batches(dataset, batch_size, desc=f"SER ({mode})"):
            batch = collate(rows)
            logits = classifier(**{k: v.to(model.device) for k, v in batch.items()}).logits
            predictions += [labels[i] for i in logits.argmax(-1).tolist()]
            references += [labels[int(r["labels"])] for r in rows]
        results[mode] = classification_metrics(predictions, references, labels=labels, bootstrap=bootstrap)
        if speakers is not None:
            results[mode].update(speaker_scores(predictions, references, speakers, labels, bootstrap))
    return results


def audio_token_check(model, processor, dataset, labels, probe_size: int = 16) -> dict[str, float]:
    """Token diversity and norm ratio of the connector on a fixed probe batch (the first clips of
    ``dataset``), with a loud warning when the audio tokens are near-identical between clips."""
    from .audio_llm_common import CachedAudioLLMCollator

    rows = [dataset[i] for i in range(min(probe_size, len(dataset)))]
    batch = CachedAudioLLMCollator(processor, "ser", labels, with_answers=False, fixed_prompt=True)(rows)
    stats = model.audio_token_statistics(
        encoder_hidden_states=batch["encoder_hidden_states"].to(model.device),
        encoder_attention_mask=batch["encoder_attention_mask"].to(model.device),
    )
    warning = model.connector.health_warning(stats)
    if warning:
        logger.warning("%s See eval_results.json.", warning)
    return stats


@torch.no_grad()
def evaluate_text_only(model, processor, dataset, labels: list[str], batch_size: int = 16) -> dict:
    """SER from the transcript alone (no audio): the text-only side of the modality comparison."""
    classifier = model.as_classifier("label_logits")
    predictions, references = [], []
    for rows in batches(dataset, batch_size):
        batch = processor(
            text=[r["transcript"] for r in rows], task="ser", prompt_index=0, shuffle_labels=False
        )
        logits = classifier(**{k: v.to(model.device) for k, v in batch.items()}).logits
        predictions += [labels[i] for i in logits.argmax(-1).tolist()]
        references += [labels[int(r["labels"])] for r in rows]
    return classification_metrics(predictions, references, labels=labels)


@torch.no_grad()
def evaluate_wer(model, processor, dataset, batch_size: int = 16, max_new_tokens: int = 48) -> float:
    """Greedy transcription of a cached ASR split, scored with WER."""
    from .audio_llm_common import CachedAudioLLMCollator

    collate = CachedAudioLLMCollator(processor, "asr", with_answers=False, fixed_prompt=True)
    hypotheses, references = [], []
    for rows in batches(dataset, batch_size, desc="transcribing (WER)"):
        batch = {k: v.to(model.device) for k, v in collate(rows).items()}
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
        hypotheses += processor.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        references += [r["transcript"] for r in rows]
    return word_error_rate(hypotheses, references)


__all__ = ["audio_token_check", "batches", "evaluate_ser", "evaluate_text_only", "evaluate_wer"]
