"""What an EmoSLLM run leaves behind (``recipes/emosllm.py``): the merged model, eval_results.json,
the plots and the model card, whose training configuration names the connector and what the run does
differently from the paper's recipe."""

from __future__ import annotations

import json

from serhub.recipes.audio_llm_common import AudioLLMArguments
from serhub.recipes.connector_init import card_row as connector_start
from serhub.recipes.emosllm_arguments import CurriculumArguments
from serhub.recipes.logs import get_logger
from serhub.recipes.reporting import finish_run
from serhub.recipes.speaker_prosody import (
    SPEAKER_PROSODY_NOTE,
    measuring_feature_extractor,
    speaker_prosody_row,
)
from serhub.recipes.staged import StagedRun

logger = get_logger("emosllm")


def finish(run: StagedRun, model, processor, results: dict, push_to_hub: bool) -> None:
    """Save the merged model, eval_results.json, the plots and the card; push if asked."""
    model_args, curriculum = run.model_args, run.args
    modes = [m for m in ("label_logits", "transcript_conditioned") if m in results]
    best = max(modes, key=lambda m: results[m]["macro_f1"]) if modes else None
    if model.prosody is not None:  # serhub.heldout / evaluate enrol; the saved extractor measures prosody
        model.config.speaker_normalization = SPEAKER_PROSODY_NOTE
        model.config.speaker_reference = run.data_args.speaker_reference  # as serhub.heldout reads it
        processor.feature_extractor = measuring_feature_extractor(processor.feature_extractor)
    finish_run(
        run.output_dir,
        save=(model.merge_and_unload_lora(), processor),
        results=results,
        summary={**run.timings, "labels": run.labels, "world_size": run.training_args.world_size},
        labels=run.labels,
        confusion=(results[best], f"test ({best})") if best else None,
        history=run.history,
        curves_title="EmoSLLM curriculum",
        card={
            "template": "audio_llm.md",
            "model_name": "serhub-emosllm",
            "dataset_name": run.data_args.dataset_name_or_path or "synthetic_emotions",
            "results": {f"test ({m})": results[m] for m in modes},
            "base_model": model_args.text_model_name_or_path,
            "tags": ["emosllm", "audio-llm"],
            "wer": results["wer_heldout_asr"],
            "training_config": {
                "audio model": model_args.audio_model_name_or_path,
                "LLM": model_args.text_model_name_or_path,
                "connector": connector_summary(model_args),
                **connector_start(model_args),
                **speaker_prosody_row(model_args),
                "LoRA": f"r={model_args.lora_r}, alpha={model_args.lora_alpha}",
                "phases": curriculum.phases,
                "steps per phase": curriculum.phase_max_steps,
                "phase 3 batches": phase3_batches(curriculum),
                "ASR weight": f"{curriculum.asr_weight_start} -> {curriculum.asr_weight_end} ({curriculum.asr_weight_schedule})",
                "learning rate": run.training_args.learning_rate,
                "LoRA learning rate": lora_rates(curriculum, run.training_args.learning_rate),
                "input trimming": trimming_summary(model_args),
                "system turn": system_turn_summary(model_args.system_prompt),
                **paper_departures(model_args, curriculum),
            },
        },
        training_args=run.training_args,
        push_to_hub=push_to_hub,
        data_args=run.data_args,
    )
    short = {
        k: {m: v[m] for m in ("macro_f1", "unweighted_accuracy", "accuracy")}
        if isinstance(v, dict) and "macro_f1" in v
        else v
        for k, v in results.items()
    }
    logger.info("%s", json.dumps(short, indent=2))


def lora_rates(curriculum, learning_rate: float) -> str:
    """The LoRA adapters' learning rate, phase 3's own where it differs."""
    rate = curriculum.lora_learning_rate or learning_rate
    phase3 = curriculum.phase3_lora_learning_rate
    return f"{rate}" if phase3 is None or phase3 == rate else f"{rate} (phase 3: {phase3})"


def phase3_batches(curriculum) -> str:
    """Phase 3's mix of prompts and what trains each readout, for the card."""
    text = (
        f"{curriculum.ser_only_fraction:.0%} SER-only prompts ({curriculum.ser_only_objective}), the rest "
        "joint '| ASR: ... | Emotion: ...' answers (LM loss)"
    )
    losses = [
        f"{weight} x the label loss {where}"
        for weight, where in (
            (curriculum.joint_label_weight, "at their label (transcript_conditioned)"),
            (curriculum.direct_label_weight, "at their first token (label_logits)"),
        )
        if weight
    ]
    return text + (" + " + " and ".join(losses) if losses else "")


def trimming_summary(model_args: AudioLLMArguments) -> str:
    """What the saved feature extractor cuts from every clip (in training and in use)."""
    if model_args.trim_silence_db is None:
        return "none: clips as given"
    summary = f"leading/trailing audio {model_args.trim_silence_db:g} dB below the loudest frame"
    if model_args.trim_noise_margin_db is not None:
        summary += f", or less than {model_args.trim_noise_margin_db:g} dB above the clip's noise floor"
    return summary


def system_turn_summary(system_prompt: str | None) -> str:
    """The system turn every prompt was trained (and is scored) with."""
    if system_prompt is None:
        return "the chat template's own"
    return "empty" if system_prompt == "" else repr(system_prompt)


def connector_summary(model_args: AudioLLMArguments) -> str:
    from serhub.modeling.connectors import connector_class

    return connector_class(model_args.connector).describe(model_args)


def paper_departures(model_args: AudioLLMArguments, curriculum: CurriculumArguments) -> dict:
    """The card's rows for what this run does differently from EmoSLLM's own recipe."""
    rows = []
    from serhub.modeling.connectors import QueryPoolingMapper, connector_class

    if model_args.connector == "ctc_path":
        rows.append(
            "the CTC head's words beside the QPMapper's voice tokens (ctc_path), trained by a phase 0 of CTC "
            "alignment and copy rows in phases 1-2"
        )
    elif connector_class(model_args.connector) is not QueryPoolingMapper:  # the paper's connector
        rows.append(f"connector {model_args.connector} in place of EmoSLLM's QPMapper")
    if curriculum.ser_only_fraction >= 1.0:
        rows.append("phase 3 trains the SER-only prompt alone (EmoSLLM's SER-only variant), no joint answers")
    if curriculum.ser_only_fraction > 0 and curriculum.ser_only_objective == "label_ce":
        rows.append("SER-only batches use a class-weighted CE over the labels' scores, not the LM loss")
    if curriculum.ser_only_fraction < 1.0 and (
        curriculum.joint_label_weight or curriculum.direct_label_weight
    ):
        rows.append("joint answers add a class-weighted CE over the labels' scores to their LM loss")
    if not rows:
        return {}
    return {
        "departures from the paper": "; ".join(rows)
        + " (measured reasons: recipes/configs/emosllm/default.yaml)"
    }


__all__ = ["connector_summary", "finish", "paper_departures"]
