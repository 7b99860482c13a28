"""The descriptor system's evaluation (``recipes/descriptors.py``): the metrics each stage adds to its
evaluations, and the final test-split scoring as the paper's ablation: the emotion without descriptors
in the answer (``label_logits``), after the model's own descriptors (``descriptor_conditioned``) and
after the ground-truth transcript and descriptors; descriptor quality with BLEU-4 / METEOR / ROUGE-L
against a constant-answer floor, and the transcripts' WER."""

from __future__ import annotations

from collections import Counter

import torch
from serhub.datasets_scripts.descriptors import WORDS, descriptor_words
from serhub.metrics.asr import word_error_rate
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics
from serhub.metrics.text_metrics.text_metrics import text_metrics
from serhub.modeling.prompting_audio_llm import ASR_PREFIX, described_answer, parse_answer
from serhub.recipes.audio_llm_common import (
    CachedAudioLLMCollator,
    audio_token_check,
    batches,
    evaluate_ser,
)
from serhub.recipes.reporting import scalar_metrics
from serhub.recipes.staged import StagedRun


def stage_evaluation(run: StagedRun, processor, joint: bool):
    evaluation = run.cached[run.data_args.eval_split]
    size = run.training_args.per_device_eval_batch_size

    def extra_eval(model):
        metrics = audio_token_check(model, processor, evaluation, run.labels)
        if joint:
            r = evaluate_ser(model, processor, evaluation, run.labels, ("label_logits",), size)[
                "label_logits"
            ]
            metrics.update(
                scalar_metrics({k: r[k] for k in ("macro_f1", "unweighted_accuracy")}, "label_logits_")
            )
        return metrics

    return extra_eval


@torch.no_grad()
def write_answers(model, processor, dataset, batch_size: int = 16) -> list[dict]:
    """The model's full answers to the descriptor prompt, parsed: transcript, descriptors, label."""
    collate = CachedAudioLLMCollator(
        processor, "asr+des+ser", with_answers=False, fixed_prompt=True, answer_prefix=ASR_PREFIX
    )
    answers = []
    for rows in batches(dataset, batch_size, desc="writing answers"):
        batch = {k: v.to(model.device) for k, v in collate(rows).items()}
        out = model.generate(**batch, max_new_tokens=model.config.max_answer_tokens, do_sample=False)
        texts = processor.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        answers += [parse_answer(ASR_PREFIX + " " + t) for t in texts]
    return answers


@torch.no_grad()
def evaluate_given_descriptors(
    model, processor, dataset, labels, batch_size: int = 16, bootstrap: int = 0
) -> dict:
    """SER with the ground-truth transcript and descriptors written into the answer (teacher forcing),
    the labels scored after "| Emotion:": the paper's upper bound for descriptor-conditioned SER."""
    collate = CachedAudioLLMCollator(
        processor,
        "asr+des+ser",
        labels,
        with_answers=False,
        fixed_prompt=True,
        answer_prefix=lambda r: described_answer(r["transcript"], r["descriptors"]),
    )
    label_ids = model.config.prompt["emotion_label_token_ids"]
    predictions, references = [], []
    for rows in batches(dataset, batch_size, desc="SER (ground-truth descriptors)"):
        batch = {k: v.to(model.device) for k, v in collate(rows).items()}
        embeds, mask, positions = model.build_inputs(
            batch["input_ids"],
            batch["attention_mask"],
            None,
            None,
            batch["encoder_hidden_states"],
            batch["encoder_attention_mask"],
        )
        scores = model.label_scores(embeds, mask, positions, label_ids)
        predictions += [labels[i] for i in scores.argmax(-1).tolist()]
        references += [labels[int(r["labels"])] for r in rows]
    return classification_metrics(predictions, references, labels=labels, bootstrap=bootstrap)


def descriptor_agreement(written: list[str | None], references: list[str], training: list[str]) -> dict:
    """Per attribute the references name (pitch, intonation, speed, loudness): the share of clips whose
    written word for it is the reference's (``agreement``; a missing word disagrees) beside the share
    that always writing the ``training`` descriptors' commonest word for it would get
    (``commonest_agreement``), and the difference (``above_commonest``)."""
    wrote, truth = [descriptor_words(w) for w in written], [descriptor_words(r) for r in references]
    seen = Counter((name, word) for text in training for name, word in descriptor_words(text).items())
    out = {}
    for name in WORDS:
        rows = [i for i, t in enumerate(truth) if name in t]
        if not rows:
            continue
        common = max(WORDS[name], key=lambda word: seen[(name, word)])
        agreement = sum(wrote[i].get(name) == truth[i][name] for i in rows) / len(rows)
        floor = sum(truth[i][name] == common for i in rows) / len(rows)
        out[name] = {
            "agreement": round(agreement, 4),
            "commonest_word": common,
            "commonest_agreement": round(floor, 4),
            "above_commonest": round(agreement - floor, 4),
            "num_samples": len(rows),
        }
    return out


def final_evaluation(run: StagedRun, model, processor) -> dict:
    test = run.cached[run.data_args.test_split]
    size, bootstrap = run.training_args.per_device_eval_batch_size, run.data_args.bootstrap
    split = run.splits[run.data_args.test_split]
    speakers = list(split["speaker_id"]) if "speaker_id" in split.column_names else None
    results = evaluate_ser(
        model,
        processor,
        test,
        run.labels,
        ("label_logits", "descriptor_conditioned"),
        size,
        bootstrap,
        speakers,
    )
    results["ground_truth_descriptors"] = evaluate_given_descriptors(
        model, processor, test, run.labels, size, bootstrap
    )
    limit = run.args.max_generation_eval_samples
    subset = test.select(range(min(limit, len(test)))) if limit else test
    answers = write_answers(model, processor, subset, size)
    results["descriptor_quality"] = text_metrics(
        [a["descriptors"] or "" for a in answers], [r["descriptors"] for r in subset]
    )
    # what writing the training split's most common descriptors every time would score (the words
    # "pitch", "intonation", ... recur in every reference: a floor for the figures above)
    train = run.cached[run.data_args.train_split]
    common = max(set(train["descriptors"]), key=list(train["descriptors"]).count)
    results["descriptor_quality_constant_answer"] = {
        "answer": common,
        **text_metrics([common] * len(subset), [r["descriptors"] for r in subset]),
    }
    results["descriptor_agreement"] = descriptor_agreement(
        [a["descriptors"] for a in answers], [r["descriptors"] for r in subset], list(train["descriptors"])
    )
    results["wer"] = word_error_rate(
        [a["transcript"] or "" for a in answers], [r["transcript"] for r in subset]
    )
    results["answers_with_descriptors"] = sum(a["descriptors"] is not None for a in answers) / max(
        len(answers), 1
    )
    results["example_answers"] = [
        {
            "reference": described_answer(r["transcript"], r["descriptors"], run.labels[int(r["labels"])]),
            "answer": a,
        }
        for r, a in zip([subset[i] for i in range(min(5, len(subset)))], answers[:5])
    ]
    results["audio_tokens"] = audio_token_check(model, processor, test, run.labels)
    return results


__all__ = [
    "descriptor_agreement",
    "evaluate_given_descriptors",
    "final_evaluation",
    "stage_evaluation",
    "write_answers",
]
