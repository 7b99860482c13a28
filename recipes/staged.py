"""Multi-stage training of the audio-LLMs: a recipe's stages are a table of ``Stage`` rows and one
runner trains them (EmoSLLM's 3-phase curriculum, the descriptor system's alternating stages).

Each stage's output is ``<output_dir>/<stage.name>`` (what trains only), marked done by
``stage_done.json``. A stage starts from the previous stage's output when that is done (else from the
pretrained parts), an interrupted stage resumes from its last complete checkpoint, and a finished
stage is skipped on re-run. The frozen encoder runs once per dataset (cache).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from serhub.modeling import AudioLLMForConditionalGeneration, AudioLLMProcessor
from serhub.recipes.arguments import DataArguments
from serhub.recipes.audio_llm_common import (
    JOINT_TASKS,
    AudioLLMArguments,
    build_model,
    cache_split,
    cache_training_split,
)
from serhub.recipes.data import encoder_cache_dir
from serhub.recipes.logs import get_logger
from serhub.recipes.reporting import write_json
from serhub.recipes.run_folders import last_complete_checkpoint
from serhub.recipes.speaker_prosody import speaker_prosody_columns
from transformers import TrainingArguments

DONE_FILE = "stage_done.json"


@dataclass(frozen=True)
class Stage:
    """One row of a recipe's stage table. ``data`` / ``eval_data`` name the cached datasets it trains
    and is evaluated on, with the run's split names as ``{train_split}`` / ``{eval_split}``."""

    name: str  # its folder under output_dir
    description: str
    data: str
    eval_data: str
    task: str  # what the collator asks for: "asr", "asr+ser", "asr+des+ser"
    trains: Callable  # trains(model): sets what trains (freezes the rest, adds LoRA)
    max_steps: int = -1  # -1: --num_train_epochs
    title: str = ""  # how the logs name it; default: its name

    @property
    def label(self) -> str:
        return self.title or self.name

    @property
    def joint(self) -> bool:
        """Answers with a transcript and an emotion: a scheduled ASR weight and SER metrics."""
        return self.task in JOINT_TASKS


@dataclass
class StagedRun:
    """What the stages of one run share: its arguments, data, encoder cache and records."""

    recipe: str  # its logger's name
    model_args: AudioLLMArguments
    data_args: DataArguments
    args: object  # the recipe's own arguments (its curriculum)
    training_args: TrainingArguments
    labels: list[str]
    splits: dict  # cache name -> dataset
    keep: dict  # cache name -> the columns its cache keeps beside the encoder outputs
    cached: dict = field(default_factory=dict)
    # --speaker_prosody: the training split's prosody statistics (``speaker_prosody_columns``)
    prosody_statistics: tuple | None = None
    timings: dict = field(default_factory=dict)
    history: list = field(default_factory=list)

    @property
    def output_dir(self) -> str:
        return self.training_args.output_dir

    @property
    def logger(self):
        return get_logger(self.recipe)

    def folder(self, stage: Stage) -> Path:
        return Path(self.output_dir) / stage.name

    def dataset(self, key: str):
        """The cached dataset ``key`` names ("ser_{train_split}": the run's split names filled in)."""
        data = self.data_args
        return self.cached[
            key.format(train_split=data.train_split, eval_split=data.eval_split, test_split=data.test_split)
        ]


def done_record(folder: Path) -> Path | None:
    """The stage's completion marker when the stage finished, else None."""
    return folder / DONE_FILE if (folder / DONE_FILE).is_file() else None


def ensure_cached(run: StagedRun, model, processor) -> None:
    """Encode every dataset once with the frozen encoder (the same in every stage); for a
    ``speaker_prosody`` model the labelled splits get each clip's prosody numbers and its speaker's
    reference beside the cache, and the model the training split's prosody statistics."""
    if run.cached:
        if model.prosody is not None:
            model.prosody.set_statistics(*run.prosody_statistics)
        return
    start = time.time()
    with run.training_args.main_process_first(desc="encoder cache"):
        cache, batch_size = (
            encoder_cache_dir(run.data_args, run.output_dir),
            run.training_args.per_device_eval_batch_size,
        )
        train = f"ser_{run.data_args.train_split}"  # with --augment: its augmented copies too
        for name, dataset in run.splits.items():
            if name == train:
                run.cached[name] = cache_training_split(
                    model, processor, dataset, cache, name, batch_size, run.keep[name],
                    run.data_args, run.training_args.seed,
                )  # fmt: skip
            else:
                run.cached[name] = cache_split(
                    model, processor, dataset, cache, name, batch_size, run.keep[name]
                )
        if model.prosody is not None:
            labelled = [name for name in run.cached if "labels" in run.keep[name]]
            with_prosody, run.prosody_statistics = speaker_prosody_columns(
                {name: run.cached[name] for name in labelled},
                {name: run.splits[name] for name in labelled},
                run.data_args.speaker_column,
                run.labels,
                train,
                run.data_args.speaker_reference,
            )
            run.cached.update(with_prosody)
            model.prosody.set_statistics(*run.prosody_statistics)
    run.timings["encoder_cache_s"] = round(time.time() - start, 1)


def stage_training_args(run: StagedRun, stage: Stage) -> TrainingArguments:
    """The run's training arguments for one stage: its folder and steps, no best-model reload."""
    return dataclasses.replace(
        run.training_args,
        output_dir=str(run.folder(stage)),
        max_steps=stage.max_steps,
        load_best_model_at_end=False,
        label_names=["labels"],
    )


def pretrained_parts(run: StagedRun):
    """The model and processor from the pretrained encoder and LLM the run names."""
    return build_model(run.model_args, run.labels)


def trained_connector_build(
    folder: str, done_file: str, what: str, train: Callable, done_note: str = "already done"
):
    """A ``build`` for :func:`run_stage`: the pretrained parts, then a cheap phase 0 that trains the
    connector alone, ``train(run, model, processor) -> log history`` (the encoder cache ready), saved
    once in ``<output_dir>/<folder>`` (``connector.safetensors`` and ``done_file`` with the log, written
    last) and reused by later runs. ``what`` names it in the logs."""
    from safetensors.torch import load_file, save_file

    def build(run):
        model, processor = pretrained_parts(run)
        out = Path(run.output_dir) / folder
        if (out / done_file).is_file():
            model.connector.load_state_dict(load_file(out / "connector.safetensors"))
            run.logger.info("%s: the connector from %s (%s)", what, out, done_note)
            return model, processor
        ensure_cached(run, model, processor)
        start = time.time()
        history = train(run, model, processor)
        seconds = run.timings[f"{folder}_s"] = round(time.time() - start, 1)
        if run.training_args.process_index == 0:
            out.mkdir(parents=True, exist_ok=True)
            state = {k: v.contiguous() for k, v in model.connector.state_dict().items()}
            save_file(state, out / "connector.safetensors")
            write_json(out / done_file, {"log_history": history, "seconds": seconds})
        return model, processor

    return build


def load_stage_model(run: StagedRun, stages: Sequence[Stage], index: int, build: Callable = pretrained_parts):
    """The previous stage's output when it is done, else ``build(run)`` (the pretrained parts); set up
    to train what ``stages[index]`` trains, saving only that."""
    stage, previous = stages[index], stages[index - 1] if index else None
    if previous is not None and done_record(run.folder(previous)):
        folder = run.folder(previous)
        model, processor = (
            AudioLLMForConditionalGeneration.from_pretrained(folder),
            AudioLLMProcessor.from_pretrained(folder),
        )
    else:
        if previous is not None:
            run.logger.info(
                "%s output not found: %s starts from the pretrained parts", previous.label, stage.label
            )
        model, processor = build(run)
    model.config.backbone_weights = "referenced"  # stage outputs and checkpoints: what trains only
    model.train()
    stage.trains(model)
    run.logger.info("%s: %s (%s)", stage.label, model.trainable_parameters(), stage.description)
    return model, processor


def run_stage(
    run: StagedRun,
    stages: Sequence[Stage],
    index: int,
    *,
    trainer: Callable,
    build: Callable = pretrained_parts,
    before_training: Callable | None = None,
):
    """Train ``stages[index]`` (resuming its last complete checkpoint), evaluate it, check that DDP
    ranks agree, save its output and mark it done. ``trainer(run, stages, index, model, processor)``
    builds the recipe's Trainer; ``build(run)`` the model where there is no previous output;
    ``before_training(run, stage, model, processor, trainer, resumed)`` runs just before training."""
    stage, out, log = stages[index], run.folder(stages[index]), run.logger
    model, processor = load_stage_model(run, stages, index, build)
    ensure_cached(run, model, processor)
    stage_trainer = trainer(run, stages, index, model, processor)
    last = last_complete_checkpoint(out)
    if last:
        log.info("resuming %s from %s", stage.label, last)
    if before_training is not None:
        before_training(run, stage, model, processor, stage_trainer, last)
    start = time.time()
    stage_trainer.train(resume_from_checkpoint=last)
    seconds = run.timings[f"{stage.name}_s"] = round(time.time() - start, 1)
    stage_trainer.evaluate()  # the stage's end: its metrics into the log history
    checksums = rank_checksums(model, run.training_args.world_size)
    log.info("%s weights checksum per rank (of %d): %s", stage.label, len(checksums), checksums)
    if len(set(checksums)) > 1:  # DDP ranks must end a stage with identical weights
        log.warning("%s: the ranks' weights differ (%s)", stage.label, checksums)
    if stage_trainer.is_world_process_zero():
        model.save_pretrained(out)
        processor.save_pretrained(out)
        history = stage_trainer.state.log_history
        for h in history:
            h["stage"] = stage.name
        run.history += history
        record = {"log_history": history, "seconds": seconds, "world_size": run.training_args.world_size}
        write_json(out / DONE_FILE, record)
    log.info("%s done in %s s", stage.label, seconds)
    return model, processor


def rank_checksums(model, world_size: int) -> list[float]:
    """Every rank's sum of its trainable weights (one process: its own), to check that DDP ranks
    end a stage with identical weights."""
    import torch

    value = round(float(sum(p.detach().double().sum() for p in model.parameters() if p.requires_grad)), 6)
    if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        values = [None] * world_size
        torch.distributed.all_gather_object(values, value)
        return values
    return [value]


def run_stages(run: StagedRun, stages: Sequence[Stage], indices: Sequence[int] | None = None, **hooks):
    """Run ``stages`` (or those at ``indices``, in that order), skipping the finished ones; their
    records join ``run.history``. Returns the last trained model and processor (None, None when every
    stage was already done). ``hooks``: ``run_stage``'s trainer, build and before_training."""
    model = processor = None
    for index in range(len(stages)) if indices is None else indices:
        done = done_record(run.folder(stages[index]))
        if done:
            run.logger.info("%s already done (%s); skipping", stages[index].label, done.parent)
            run.history += json.loads(done.read_text())["log_history"]
            continue
        model, processor = run_stage(run, stages, index, **hooks)
    return model, processor


def final_model(run: StagedRun, stage: Stage, model=None, processor=None):
    """The model to evaluate at the end, in eval mode: the one just trained, else ``stage``'s saved
    output; the encoder cache ready."""
    if model is None:
        folder = run.folder(stage)
        model, processor = (
            AudioLLMForConditionalGeneration.from_pretrained(folder),
            AudioLLMProcessor.from_pretrained(folder),
        )
    ensure_cached(run, model, processor)
    model.eval()
    return model, processor


__all__ = [
    "DONE_FILE",
    "Stage",
    "StagedRun",
    "done_record",
    "ensure_cached",
    "final_model",
    "pretrained_parts",
    "rank_checksums",
    "run_stage",
    "run_stages",
    "stage_training_args",
    "trained_connector_build",
]
