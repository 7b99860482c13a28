"""Explainable SER with fine-grained speech descriptors (arXiv:2505.23236): frozen speech encoder ->
two variational information-bottleneck branches (content, descriptor) -> LLM with LoRA, which writes
"| ASR: <transcript> | Descriptors: <how it sounds> | Emotion: <label>".

    accelerate launch recipes/descriptors.py            # embedded default: Whisper tiny.en + SmolLM2-135M, CPU
    accelerate launch recipes/descriptors.py --config recipes/configs/descriptors/paper_iemocap.yaml \\
        --dataset_name_or_path data/iemocap            # after datasets_scripts.descriptors --dataset data/iemocap

The stages alternate as ``--stages`` lists them (default 1, 2): stage 1 trains the content branch and
its adapter on ASR, the descriptor branch frozen; stage 2 freezes the content branch and trains the
descriptor branch and its adapter on the full answers (SER + descriptors + ASR, the transcript tokens
weighted by an ASR weight) and, in ``--ser_only_fraction`` of the batches, on the emotion alone
(the ``label_logits`` readout). LoRA on the LLM trains in both. The KL term of the branches is
weighted by beta, annealed from ``--kl_weight_start`` to ``--kl_weight_end`` over all stages.

Each stage's output is ``<output_dir>/stage<k>_<n>`` (what trains only); a finished stage is skipped
on re-run and an interrupted one resumes from its last checkpoint (the table ``STAGES``, run by
``recipes/staged.py``). At the end the test split is scored (``recipes/descriptors_evaluation.py``)
as the paper's ablation: the emotion without descriptors in the answer (``label_logits``),
after the model's own descriptors (``descriptor_conditioned``) and after the ground-truth transcript
and descriptors; descriptor quality with BLEU-4 / METEOR / ROUGE-L and the transcripts' WER.
"""

from __future__ import annotations

import dataclasses
import json
import math
from functools import partial

import datasets
from serhub.datasets_scripts.common import class_counts
from serhub.modeling.losses import build_classification_loss
from serhub.recipes.arguments import CONFIGS, DataArguments, RunArguments, start_run
from serhub.recipes.audio_llm_common import (
    AudioLLMArguments,
    AudioLLMTrainer,
    CachedAudioLLMCollator,
)
from serhub.recipes.connector_init import card_row as connector_start
from serhub.recipes.data import embedded_dataset_path, encode_labels, load_dataset_dict, resolve_labels
from serhub.recipes.descriptors_arguments import (  # noqa: F401 (KL_SCHEDULES importable from here)
    KL_SCHEDULES,
    DescriptorArguments,
    alignment_build,
    alignment_row,
)
from serhub.recipes.descriptors_evaluation import (  # noqa: F401 (write_answers, evaluate_given_descriptors too)
    evaluate_given_descriptors,
    final_evaluation,
    stage_evaluation,
    write_answers,
)
from serhub.recipes.logs import get_logger, run_main
from serhub.recipes.objectives import AudioLLMObjective, anneal, asr_weight_schedule, kl_weight_schedule
from serhub.recipes.reporting import finish_run
from serhub.recipes.run_folders import claim_output_dir, run_settings
from serhub.recipes.staged import (
    Stage,
    StagedRun,
    final_model,
    run_stages,
    stage_training_args,
)
from transformers import TrainingArguments

DEFAULT_CONFIG = CONFIGS / "descriptors" / "default.yaml"
logger = get_logger("descriptors")


# beta over the whole training: the paper's 1 -> 1e-4, evenly in log space
kl_weight = partial(anneal, start=1.0, end=1e-4, schedule="exponential")


def require_branches(connector: str) -> None:
    """The descriptor system trains a content and a descriptor branch: only the VIB connector has them."""
    from serhub.modeling.connectors import VariationalBottleneckConnector, connector_class

    if connector_class(connector) is not VariationalBottleneckConnector:
        raise ValueError(
            f"--connector {connector!r}: the descriptor system needs the two-branch connector "
            f"{VariationalBottleneckConnector.name!r} (content + descriptor)"
        )


def set_trainable_branch(model, stage: int) -> str:
    """Stage 1: the content branch trains, the descriptor branch is frozen; stage 2 the reverse. LoRA
    adapters on the LLM train in both (added when missing). Returns the trainable-parameter summary."""
    require_branches(model.config.connector)
    if not model.config.has_lora and model.config.lora_r > 0:
        model.enable_lora()
    train, freeze = ("content", "descriptor") if stage == 1 else ("descriptor", "content")
    getattr(model.connector, train).requires_grad_(True)
    getattr(model.connector, freeze).requires_grad_(False)
    return model.trainable_parameters()


# The two stages: which branch trains, and on what; LoRA on the LLM trains in both.
# ``--stages`` lists them in the order they run (1 2 1 2 alternates).
STAGES = {
    1: Stage(
        "stage_1",
        "the content branch and LoRA, on ASR (descriptor branch frozen)",
        data="{train_split}",
        eval_data="{eval_split}",
        task="asr",
        trains=partial(set_trainable_branch, stage=1),
    ),
    2: Stage(
        "stage_2",
        "the descriptor branch and LoRA, on full answers and the emotion alone (content branch frozen)",
        data="{train_split}",
        eval_data="{eval_split}",
        task="asr+des+ser",
        trains=partial(set_trainable_branch, stage=2),
    ),
}


def listed_stages(args: DescriptorArguments) -> list[Stage]:
    """The stages as --stages lists them: the k-th, stage n of STAGES, is ``stage<k>_<n>`` and trains
    its --stage_max_steps."""
    return [
        dataclasses.replace(STAGES[n], name=f"stage{k}_{n}", max_steps=steps)
        for k, (n, steps) in enumerate(zip(args.stages, args.stage_max_steps), 1)
    ]


# ---------------------------------------------------------------------------------------- data
def load_data(data_args: DataArguments, args: DescriptorArguments, training_args):
    with training_args.main_process_first(desc="datasets"):
        data = load_dataset_dict(data_args.dataset_name_or_path or str(embedded_dataset_path()), data_args)
    labels = resolve_labels(data, data_args)
    names = [s for s in (data_args.train_split, data_args.eval_split, data_args.test_split) if s]
    audio = datasets.Audio(sampling_rate=16000)
    splits = {}
    for name in names:
        ds = data[name]
        for column in ("transcript", args.descriptors_column):
            if column not in ds.column_names:
                raise ValueError(
                    f"split {name!r} has no {column!r} column (columns: {ds.column_names}). "
                    + (
                        "Add descriptors with `python -m serhub.datasets_scripts.descriptors --dataset DIR`."
                        if column == args.descriptors_column
                        else "Fill transcripts with `python -m serhub.datasets_scripts.transcribe --dataset DIR`."
                    )
                )
        if args.descriptors_column != "descriptors":
            ds = ds.rename_column(args.descriptors_column, "descriptors")
        splits[name] = encode_labels(ds.cast_column("audio", audio), data_args.label_column, labels)
    if args.max_ser_eval_samples:
        ev = splits[data_args.eval_split]
        splits[data_args.eval_split] = ev.select(range(min(args.max_ser_eval_samples, len(ev))))
    return data, labels, splits


# -------------------------------------------------------------------------------------- stages
def stage_steps(run: StagedRun) -> list[int]:
    """Each stage's optimizer steps (--num_train_epochs of the training split where a stage says -1)."""
    batch = run.training_args.per_device_train_batch_size * run.training_args.gradient_accumulation_steps
    batch *= max(run.training_args.world_size, 1)
    per_epoch = math.ceil(len(run.splits[run.data_args.train_split]) / batch)
    epochs = run.training_args.num_train_epochs
    return [s if s > 0 else math.ceil(per_epoch * epochs) for s in run.args.stage_max_steps]


def stage_trainer(run: StagedRun, stages: list[Stage], index: int, model, processor) -> AudioLLMTrainer:
    stage, args = stages[index], run.args
    train = run.dataset(stage.data)
    counts = class_counts(train, "labels", len(run.labels))
    all_steps = stage_steps(run)
    done_before, total = sum(all_steps[:index]), max(sum(all_steps), 1)

    def beta(progress: float) -> float:  # over all stages: it continues where the last stage left it
        overall = (done_before + progress * all_steps[index]) / total
        return kl_weight(
            overall, start=args.kl_weight_start, end=args.kl_weight_end, schedule=args.kl_weight_schedule
        )

    objective = AudioLLMObjective(
        classification_loss=build_classification_loss(run.model_args.loss_type, counts)
    )
    schedules = [kl_weight_schedule(objective, beta)]
    if stage.joint:
        schedules.append(
            asr_weight_schedule(
                objective, args.asr_weight_start, args.asr_weight_end, args.asr_weight_schedule
            )
        )
    return AudioLLMTrainer(
        model=model,
        args=stage_training_args(run, stage),
        train_dataset=train,
        eval_dataset=run.dataset(stage.eval_data),
        data_collator=CachedAudioLLMCollator(
            processor,
            stage.task,
            run.labels,
            seed=run.training_args.seed + index,
            ser_only_fraction=args.ser_only_fraction if stage.joint else 0.0,
            ser_only_objective=args.ser_only_objective,
        ),
        processing_class=processor,
        objective=objective,
        lora_learning_rate=args.lora_learning_rate,
        callbacks=schedules,
        extra_eval=stage_evaluation(run, processor, stage.joint),
    )


# ------------------------------------------------------------------------------------- results
def finish(run: StagedRun, model, processor, results: dict, push_to_hub: bool) -> None:
    modes = [
        m for m in ("label_logits", "descriptor_conditioned", "ground_truth_descriptors") if m in results
    ]
    quality = results.get("descriptor_quality", {})
    model.config.classification_mode = run.args.classification_mode
    finish_run(
        run.output_dir,
        save=(model.merge_and_unload_lora(), processor),
        results=results,
        summary={**run.timings, "labels": run.labels, "world_size": run.training_args.world_size},
        labels=run.labels,
        confusion=(results[model.config.classification_mode], f"test ({model.config.classification_mode})"),
        history=run.history,
        curves_title="descriptor system: alternating stages",
        card={
            "template": "descriptors.md",
            "model_name": "serhub-descriptors",
            "dataset_name": run.data_args.dataset_name_or_path or "synthetic_emotions",
            "results": {f"test ({m})": results[m] for m in modes},
            "base_model": run.model_args.text_model_name_or_path,
            "tags": ["audio-llm", "explainable-ser", "speech-descriptors"],
            "wer": results.get("wer"),
            "descriptor_quality": quality,
            "descriptor_agreement": results.get("descriptor_agreement", {}),
            "classification_mode": model.config.classification_mode,
            "training_config": {
                "audio model": run.model_args.audio_model_name_or_path,
                "LLM": run.model_args.text_model_name_or_path,
                "connector": f"vae_ib (latent {run.model_args.vib_latent_size}, {run.model_args.stack_factor} frames per token)",
                **connector_start(run.model_args),
                "LoRA": f"r={run.model_args.lora_r}, alpha={run.model_args.lora_alpha}",
                "stages": run.args.stages,
                "steps per stage": run.args.stage_max_steps,
                "beta": f"{run.args.kl_weight_start} -> {run.args.kl_weight_end} ({run.args.kl_weight_schedule})",
                "learning rate": run.training_args.learning_rate,
                **(
                    {"LoRA learning rate": run.args.lora_learning_rate} if run.args.lora_learning_rate else {}
                ),
                **alignment_row(run.args),
            },
        },
        training_args=run.training_args,
        push_to_hub=push_to_hub,
        data_args=run.data_args,
    )
    short = {m: {k: results[m][k] for k in ("macro_f1", "unweighted_accuracy")} for m in modes}
    logger.info(
        "%s",
        json.dumps(
            {
                **short,
                "descriptor_quality": quality,
                "descriptor_agreement": results.get("descriptor_agreement"),
                "wer": results.get("wer"),
            },
            indent=2,
        ),
    )


# what main() parses (and every config in recipes/configs/descriptors/ must parse with)
ARGUMENTS = (AudioLLMArguments, DataArguments, DescriptorArguments, RunArguments, TrainingArguments)


def main(argv=None):
    model_args, data_args, args, run_args, training_args, push_to_hub = start_run(
        ARGUMENTS,
        DEFAULT_CONFIG,
        argv,
    )
    require_branches(model_args.connector)  # before anything is loaded or built
    if model_args.speaker_prosody:
        raise ValueError(
            "--speaker_prosody is for whisper_llm and emosllm; the descriptor system reads the speaker's "
            "prosody through its descriptor branch (leave --speaker_prosody out)"
        )
    data, labels, splits = load_data(data_args, args, training_args)
    settings = run_settings(
        training_args,
        labels,
        dict(data.items()),
        model_args,
        data_args,
        args,
        exclude=DescriptorArguments.NOT_SETTINGS,
    )
    run_lock = claim_output_dir(  # noqa: F841 (held until the process exits)
        training_args.output_dir,
        "descriptors",
        settings,
        run_args.overwrite_output_dir,
        training_args.process_index == 0,
    )
    keep = dict.fromkeys(splits, ("labels", "transcript", "descriptors"))
    run = StagedRun("descriptors", model_args, data_args, args, training_args, labels, splits, keep)
    stages = listed_stages(args)
    model, processor = run_stages(run, stages, trainer=stage_trainer, **alignment_build(run))
    if not training_args.should_save:
        return
    # the model the last stage just trained, else (every stage was already done) its saved output
    model, processor = final_model(run, stages[-1], model, processor)
    if data_args.test_split:
        finish(run, model, processor, final_evaluation(run, model, processor), push_to_hub)


if __name__ == "__main__":
    run_main(main)
