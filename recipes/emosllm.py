"""EmoSLLM (arXiv:2508.14130): frozen speech encoder -> query-pooling mapper -> LLM with LoRA, trained
with a 3-phase curriculum.

    accelerate launch recipes/emosllm.py                  # embedded default: Whisper tiny.en + SmolLM2-135M, CPU, ~12 min
    accelerate launch recipes/emosllm.py --phases 3       # one phase alone (starts from phase 2's output)
    accelerate launch --config_file recipes/accelerate_configs/cpu_ddp.yaml recipes/emosllm.py --use_cpu true
    accelerate launch --config_file recipes/accelerate_configs/ddp.yaml recipes/emosllm.py \\
        --config recipes/configs/emosllm/paper_wavlm_llama3b_msp.yaml --dataset_name_or_path data/msp_podcast

Phase 1: only the mapper trains, on ASR. Phase 2: + LoRA on the LLM, still ASR. Phase 3: joint ASR +
SER answers "| ASR: <transcript> | Emotion: <label>", the transcript tokens weighted by an ASR weight
that decreases over the phase. Each phase starts from the previous phase's output
(``<output_dir>/phase<k>``, a trainable-only checkpoint); a finished phase is skipped on re-run and an
interrupted one resumes from its last checkpoint. The frozen encoder runs once per dataset (cache).

Every evaluation reports WER on held-out ASR speech, and in phase 3 macro-F1 / UA / WA in the
label_logits and transcript_conditioned modes. The final model (LoRA merged) is in <output_dir>,
loadable with AutoModelForAudioClassification / pipeline("audio-classification")
(trust_remote_code=True), with eval_results.json, confusion_matrix.png, training_curves.png and a
model card.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import datasets
from transformers import TrainingArguments

from datasets_scripts.common import class_counts
from metrics.plotting import plot_confusion_matrix, plot_training_curves
from modeling import AudioLLMForConditionalGeneration
from recipes.audio_llm_common import (
    SER_ONLY_OBJECTIVES,
    AudioLLMArguments,
    AudioLLMTrainer,
    CachedAudioLLMCollator,
    asr_weight,
    build_model,
    cache_split,
    evaluate_ser,
    evaluate_text_only,
    evaluate_wer,
)
from recipes.common import (
    CONFIGS,
    DataArguments,
    RunArguments,
    claim_output_dir,
    embedded_dataset_path,
    encode_labels,
    last_complete_checkpoint,
    load_dataset_dict,
    push,
    resolve_labels,
    run_settings,
    scalar_metrics,
    start_run,
    write_json,
    write_model_card,
)
from recipes.logs import get_logger

DEFAULT_CONFIG = CONFIGS / "emosllm" / "default.yaml"
logger = get_logger("emosllm")


@dataclass
class CurriculumArguments:
    phases: list[int] = field(
        default_factory=lambda: [1, 2, 3], metadata={"help": "which phases to run, in order"}
    )
    phase_max_steps: list[int] = field(
        default_factory=lambda: [-1, -1, -1],
        metadata={"help": "steps of phases 1, 2, 3 (-1: num_train_epochs)"},
    )
    asr_weight_start: float = 1.0
    asr_weight_end: float = 0.1
    asr_weight_schedule: str = field(default="linear", metadata={"help": "constant | linear | cosine"})
    ser_only_fraction: float = field(
        default=0.0,
        metadata={
            "help": "phase 3: share of batches with the SER-only prompt (trains the label_logits readout); "
            "the rest are joint '| ASR: ... | Emotion: ...' answers"
        },
    )
    ser_only_objective: str = field(
        default="lm",
        metadata={
            "help": "phase 3's SER-only batches: 'lm' (LM loss on the label word, EmoSLLM) or 'label_ce' "
            "(class-weighted cross-entropy over the labels' scores alone, the label_logits readout)"
        },
    )
    asr_dataset_name_or_path: str | None = field(
        default=None, metadata={"help": "ASR data; default: the embedded Asterisk prompts"}
    )
    asr_train_split: str = "train"
    asr_eval_split: str = "test"
    max_asr_eval_samples: int = 48
    max_asr_transcript_words: int | None = field(
        default=None,
        metadata={"help": "drop ASR clips with longer transcripts (long prompts cost time and memory)"},
    )
    max_ser_eval_samples: int | None = None
    eval_transcript_conditioned: bool = True

    def __post_init__(self):
        bad = [s for s in self.phase_max_steps if s == 0 or s < -1]
        if bad:
            raise ValueError(
                f"--phase_max_steps {self.phase_max_steps}: each phase needs > 0 steps, or -1 for "
                "--num_train_epochs; a phase of zero steps would report an untrained model."
            )
        if self.ser_only_objective not in SER_ONLY_OBJECTIVES:
            raise ValueError(
                f"--ser_only_objective {self.ser_only_objective!r}: expected one of {SER_ONLY_OBJECTIVES}"
            )
        unknown = sorted(set(self.phases) - {1, 2, 3})
        if unknown:
            raise ValueError(f"--phases {self.phases}: EmoSLLM has phases 1, 2 and 3, not {unknown}")


def phase_dir(output_dir: str, phase: int) -> Path:
    return Path(output_dir) / f"phase{phase}"


def load_phase_model(model_args, curriculum, training_args, labels, phase: int):
    """Phase 1 starts from the pretrained parts; phase k from phase k-1's output (+ LoRA at phase 2)."""
    if phase == 1 or not (phase_dir(training_args.output_dir, phase - 1) / "phase_done.json").is_file():
        if phase > 1:
            logger.info(
                "phase %d output not found: phase %d starts from the pretrained parts", phase - 1, phase
            )
        model, processor = build_model(model_args, labels)
    else:
        previous = phase_dir(training_args.output_dir, phase - 1)
        model = AudioLLMForConditionalGeneration.from_pretrained(previous)
        from modeling import AudioLLMProcessor

        processor = AudioLLMProcessor.from_pretrained(previous)
    model.config.backbone_weights = "referenced"  # phase outputs and checkpoints: what trains only
    model.train()
    if phase == 1:
        model.freeze_language_model()
    elif not any(".lora_" in n for n, _ in model.named_parameters()):
        model.enable_lora()
    logger.info("phase %d: %s", phase, model.trainable_parameters())
    return model, processor


# below this mean pairwise cosine distance between clips' audio tokens, the connector has collapsed
# (a 2-layer mapper at initialisation gives ~0.5; a collapsed one < 0.01)
COLLAPSE_DIVERSITY = 0.05


def audio_token_check(model, processor, dataset, labels, probe_size: int = 16) -> dict[str, float]:
    """Token diversity and norm ratio of the connector on a fixed probe batch (the first clips of
    ``dataset``), with a loud warning when the audio tokens are near-identical between clips."""
    rows = [dataset[i] for i in range(min(probe_size, len(dataset)))]
    batch = CachedAudioLLMCollator(processor, "ser", labels, with_answers=False, fixed_prompt=True)(rows)
    stats = model.audio_token_statistics(
        encoder_hidden_states=batch["encoder_hidden_states"].to(model.device),
        encoder_attention_mask=batch["encoder_attention_mask"].to(model.device),
    )
    if stats["token_diversity"] < COLLAPSE_DIVERSITY:
        logger.warning(
            "the audio tokens are near-identical between clips (token diversity %.4f < %s): the connector has "
            "collapsed and the LLM cannot tell clips apart. Lower the learning rate or train longer; see "
            "eval_results.json.",
            stats["token_diversity"],
            COLLAPSE_DIVERSITY,
        )
    return stats


def curriculum_records(output_dir: str) -> tuple[dict, dict]:
    """From the phases' records: held-out WER before training and after each phase, and the audio
    tokens' statistics after each phase (each phase's last evaluation)."""
    wer_by_phase, tokens_by_phase = {}, {}
    if (before_file := phase_dir(output_dir, 1) / "wer_before_training.json").is_file():
        wer_by_phase["before_training"] = json.loads(before_file.read_text())["wer"]
    for phase in (1, 2, 3):
        done_file = phase_dir(output_dir, phase) / "phase_done.json"
        if not done_file.is_file():
            continue
        evals = [h for h in json.loads(done_file.read_text())["log_history"] if "eval_wer" in h]
        if evals:
            wer_by_phase[f"after_phase{phase}"] = evals[-1]["eval_wer"]
            if "eval_token_diversity" in evals[-1]:
                tokens_by_phase[f"after_phase{phase}"] = {
                    k: evals[-1][f"eval_{k}"] for k in ("token_diversity", "token_norm_ratio")
                }
    return wer_by_phase, tokens_by_phase


def rank_checksums(model, world_size: int) -> list[float]:
    """Every rank's sum of its trainable weights (one process: its own), to check that DDP ranks
    end a phase with identical weights."""
    import torch

    value = round(float(sum(p.detach().double().sum() for p in model.parameters() if p.requires_grad)), 6)
    if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        values = [None] * world_size
        torch.distributed.all_gather_object(values, value)
        return values
    return [value]


def main(argv=None):
    model_args, data_args, curriculum, run_args, training_args, push_to_hub = start_run(
        (AudioLLMArguments, DataArguments, CurriculumArguments, RunArguments, TrainingArguments),
        DEFAULT_CONFIG,
        argv,
    )
    output_dir = training_args.output_dir

    # ------------------------------------------------------------------ data
    with training_args.main_process_first(desc="datasets"):
        ser = load_dataset_dict(data_args.dataset_name_or_path)
        asr = load_dataset_dict(
            curriculum.asr_dataset_name_or_path or str(embedded_dataset_path("asterisk_prompts"))
        )
    labels = resolve_labels(ser, data_args)
    ser_splits = {s: ser[s] for s in (data_args.train_split, data_args.eval_split, data_args.test_split) if s}
    ser_splits = {
        s: encode_labels(
            d.cast_column("audio", datasets.Audio(sampling_rate=16000)), data_args.label_column, labels
        )
        for s, d in ser_splits.items()
    }
    if curriculum.max_ser_eval_samples:
        ser_splits[data_args.eval_split] = ser_splits[data_args.eval_split].select(
            range(min(curriculum.max_ser_eval_samples, len(ser_splits[data_args.eval_split])))
        )
    asr_splits = {
        "train": asr[curriculum.asr_train_split].cast_column("audio", datasets.Audio(sampling_rate=16000)),
        "eval": asr[curriculum.asr_eval_split].cast_column("audio", datasets.Audio(sampling_rate=16000)),
    }
    if curriculum.max_asr_transcript_words:
        limit = curriculum.max_asr_transcript_words
        asr_splits = {
            k: v.filter(lambda t: len(t.split()) <= limit, input_columns="transcript")
            for k, v in asr_splits.items()
        }
    asr_splits["eval"] = asr_splits["eval"].select(
        range(min(curriculum.max_asr_eval_samples, len(asr_splits["eval"])))
    )

    # the folder is this run's: a finished or partial run with other data/labels/settings is refused
    settings = run_settings(
        training_args,
        labels,
        {**{f"ser_{k}": v for k, v in ser.items()}, **{f"asr_{k}": v for k, v in asr.items()}},
        model_args,
        data_args,
        curriculum,
        # which phases run now, how long they train (more steps continue a run) and evaluation sizes
        exclude=(
            "phases",
            "phase_max_steps",
            "max_asr_eval_samples",
            "max_ser_eval_samples",
            "eval_transcript_conditioned",
            "bootstrap",
        ),
    )
    run_lock = claim_output_dir(  # noqa: F841 (held until the process exits)
        output_dir, "emosllm", settings, run_args.overwrite_output_dir, training_args.process_index == 0
    )

    history, timings, cached = [], {}, {}
    model = processor = None

    def ensure_cached(model, processor):
        """Encode every dataset once with the frozen encoder (the same in every phase)."""
        if cached:
            return
        start = time.time()
        with training_args.main_process_first(desc="encoder cache"):
            cache = f"{output_dir}/encoder_cache"
            bs = training_args.per_device_eval_batch_size
            for name, ds in ser_splits.items():
                cached[f"ser_{name}"] = cache_split(
                    model, processor, ds, cache, f"ser_{name}", bs, ("labels", "transcript")
                )
            for name, ds in asr_splits.items():
                cached[f"asr_{name}"] = cache_split(
                    model, processor, ds, cache, f"asr_{name}", bs, ("transcript",)
                )
        timings["encoder_cache_s"] = round(time.time() - start, 1)

    for index, phase in enumerate(curriculum.phases):
        out = phase_dir(output_dir, phase)
        if (out / "phase_done.json").is_file():
            logger.info("phase %d already done (%s); skipping", phase, out)
            history += json.loads((out / "phase_done.json").read_text())["log_history"]
            continue
        model, processor = load_phase_model(model_args, curriculum, training_args, labels, phase)

        ensure_cached(model, processor)

        # -------------------------------------------------------------- train one phase
        joint = phase == 3
        train = cached[f"ser_{data_args.train_split}"] if joint else cached["asr_train"]
        if joint:  # the label-restricted SER loss is weighted by the training split's class counts
            model.config.class_counts = class_counts(train, "labels", len(labels))
        steps = curriculum.phase_max_steps[phase - 1] if len(curriculum.phase_max_steps) >= phase else -1
        phase_args = dataclasses.replace(
            training_args,
            output_dir=str(out),
            max_steps=steps,
            load_best_model_at_end=False,
            label_names=["labels"],
        )

        def extra_eval(m, joint=joint, proc=processor):
            metrics = {
                "wer": evaluate_wer(m, proc, cached["asr_eval"], training_args.per_device_eval_batch_size),
                **audio_token_check(m, proc, cached[f"ser_{data_args.eval_split}"], labels),
            }
            if joint:
                modes = (
                    ("label_logits", "transcript_conditioned")
                    if curriculum.eval_transcript_conditioned
                    else ("label_logits",)
                )
                for mode, r in evaluate_ser(
                    m, proc, cached[f"ser_{data_args.eval_split}"], labels, modes
                ).items():
                    metrics.update(
                        scalar_metrics(
                            {k: r[k] for k in ("macro_f1", "unweighted_accuracy", "accuracy")},
                            prefix=f"{mode}_",
                        )
                    )
            return metrics

        trainer = AudioLLMTrainer(
            model=model,
            args=phase_args,
            train_dataset=train,
            eval_dataset=cached[f"ser_{data_args.eval_split}"] if joint else cached["asr_eval"],
            data_collator=CachedAudioLLMCollator(
                processor,
                "asr+ser" if joint else "asr",
                labels,
                seed=training_args.seed + phase,
                ser_only_fraction=curriculum.ser_only_fraction if joint else 0.0,
                ser_only_objective=curriculum.ser_only_objective,
            ),
            processing_class=processor,
            asr_weight_schedule=partial(
                asr_weight,
                start=curriculum.asr_weight_start,
                end=curriculum.asr_weight_end,
                schedule=curriculum.asr_weight_schedule,
            )
            if joint
            else None,
            extra_eval=extra_eval,
        )
        last = last_complete_checkpoint(str(out)) if out.is_dir() else None
        if last:
            logger.info("resuming phase %d from %s", phase, last)
        before_file = out / "wer_before_training.json"
        if phase == 1 and not last:
            # the untrained model's WER, what phases 1-2 are measured against; on disk at once, so an
            # interrupted phase 1 keeps it. Every rank evaluates (ranks must reach training together).
            wer = evaluate_wer(model, processor, cached["asr_eval"], training_args.per_device_eval_batch_size)
            if trainer.is_world_process_zero():
                write_json(before_file, {"wer": wer})
                logger.info("WER before training: %.3f", wer)
        start = time.time()
        trainer.train(resume_from_checkpoint=last)
        timings[f"phase{phase}_s"] = round(time.time() - start, 1)
        trainer.evaluate()  # the phase's end: WER (and SER in phase 3) into the log history
        # one line per rank: DDP ranks must end a phase with identical weights
        checksums = rank_checksums(model, training_args.world_size)
        logger.info("phase %d weights checksum per rank (of %d): %s", phase, len(checksums), checksums)
        if len(set(checksums)) > 1:  # DDP ranks must end a phase with identical weights
            logger.warning("phase %d: the ranks' weights differ (%s)", phase, checksums)
        if trainer.is_world_process_zero():
            model.save_pretrained(out)
            processor.save_pretrained(out)
            for h in trainer.state.log_history:
                h["phase"] = phase
            history += trainer.state.log_history
            write_json(
                out / "phase_done.json",
                {
                    "log_history": trainer.state.log_history,
                    "seconds": timings[f"phase{phase}_s"],
                    "world_size": training_args.world_size,
                },
            )
        logger.info("phase %d done in %s s", phase, timings[f"phase{phase}_s"])
        if index == len(curriculum.phases) - 1:
            break

    if 3 not in curriculum.phases or not training_args.should_save:
        return
    # ------------------------------------------------------------------ final evaluation
    final_phase = phase_dir(output_dir, 3)
    if model is None:  # every phase was already done: evaluate the saved phase-3 model
        from modeling import AudioLLMProcessor

        model, processor = (
            AudioLLMForConditionalGeneration.from_pretrained(final_phase),
            AudioLLMProcessor.from_pretrained(final_phase),
        )
    ensure_cached(model, processor)
    model.eval()
    results = {}
    # held-out WER and audio-token statistics along the curriculum, including phases finished by an
    # earlier run; phase 3's end already measured this model on the same clips: not measured twice
    results["wer_by_phase"], results["audio_tokens_by_phase"] = curriculum_records(output_dir)
    results["wer_heldout_asr"] = results["wer_by_phase"].get("after_phase3")
    if results["wer_heldout_asr"] is None:
        results["wer_heldout_asr"] = evaluate_wer(
            model, processor, cached["asr_eval"], training_args.per_device_eval_batch_size
        )
    results["audio_tokens"] = results["audio_tokens_by_phase"].get("after_phase3") or audio_token_check(
        model, processor, cached[f"ser_{data_args.eval_split}"], labels
    )
    if data_args.test_split and f"ser_{data_args.test_split}" in cached:
        modes = ("label_logits", "transcript_conditioned")
        results.update(
            evaluate_ser(
                model,
                processor,
                cached[f"ser_{data_args.test_split}"],
                labels,
                modes,
                bootstrap=data_args.bootstrap,
            )
        )
        # the modality comparison the synthetic corpus is built for: the same model from the words alone
        results["text_only"] = evaluate_text_only(
            model, processor, cached[f"ser_{data_args.test_split}"], labels
        )

    # ------------------------------------------------------------------ save, card, push
    merged = model.merge_and_unload_lora()
    merged.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    write_json(
        f"{output_dir}/eval_results.json",
        {**results, **timings, "labels": labels, "world_size": training_args.world_size},
    )
    if "label_logits" in results:
        best = max(("label_logits", "transcript_conditioned"), key=lambda m: results[m]["macro_f1"])
        plot_confusion_matrix(
            results[best]["confusion_matrix"],
            labels,
            f"{output_dir}/confusion_matrix.png",
            title=f"test ({best})",
        )
    plot_training_curves(history, f"{output_dir}/training_curves.png", title="EmoSLLM curriculum")
    write_model_card(
        output_dir,
        template="audio_llm.md",
        model_name=(training_args.hub_model_id or "serhub-emosllm").split("/")[-1],
        labels=labels,
        dataset_name=data_args.dataset_name_or_path or "synthetic_emotions",
        results={
            f"test ({m})": results[m] for m in ("label_logits", "transcript_conditioned") if m in results
        },
        base_model=model_args.text_model_name_or_path,
        tags=["emosllm", "audio-llm"],
        wer=results["wer_heldout_asr"],
        training_config={
            "audio model": model_args.audio_model_name_or_path,
            "LLM": model_args.text_model_name_or_path,
            "connector": f"{model_args.connector} ({model_args.num_queries} queries)",
            "LoRA": f"r={model_args.lora_r}, alpha={model_args.lora_alpha}",
            "phases": curriculum.phases,
            "steps per phase": curriculum.phase_max_steps,
            "ASR weight": f"{curriculum.asr_weight_start} -> {curriculum.asr_weight_end} ({curriculum.asr_weight_schedule})",
            "learning rate": training_args.learning_rate,
        },
    )
    logger.info(
        "%s",
        json.dumps(
            {
                k: (
                    v
                    if not isinstance(v, dict) or "macro_f1" not in v
                    else {kk: v[kk] for kk in ("macro_f1", "unweighted_accuracy", "accuracy")}
                )
                for k, v in results.items()
            },
            indent=2,
        ),
    )
    if push_to_hub:
        push(output_dir, training_args.hub_model_id, training_args.hub_private_repo)


if __name__ == "__main__":
    sys.exit(main())
