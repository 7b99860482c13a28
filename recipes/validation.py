"""The checks made on what a user hands a recipe (a YAML config, command-line or sweep-grid values, a
label set) before anything is written: one set of checks, one error style (what was expected, what
was found, how to fix it). ``recipes/arguments.py`` and ``recipes/sweep.py`` call them."""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Sequence
from pathlib import Path

# A recipe config is a page of argument values; anything larger is not one (and a parser should not
# have to find that out by reading it).
MAX_CONFIG_BYTES = 1_000_000
BOOL_STRINGS = (
    "true",
    "false",
    "yes",
    "no",
    "t",
    "f",
    "y",
    "n",
    "1",
    "0",
)  # HfArgumentParser's string_to_bool


def _no_aliases_loader():
    import yaml

    class NoAliasSafeLoader(yaml.SafeLoader):
        """SafeLoader that refuses anchors (``&a``) and aliases (``*a``): a few nested aliases
        ("billion laughs") expand into a value that grows without bound once it is copied or printed."""

        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ValueError(
                    f"{self.name}, line {event.start_mark.line + 1}: YAML anchors and aliases (&{event.anchor} / "
                    f"*{event.anchor}) are not allowed in recipe configs; write each value out."
                )
            return super().compose_node(parent, index)

    return NoAliasSafeLoader


def load_config(path: str | Path) -> dict:
    """A recipe YAML as a dict: at most MAX_CONFIG_BYTES, no anchors/aliases, a mapping of names."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"--config {path}: no such file; recipe configs are in recipes/configs/<recipe>/"
        )
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ValueError(
            f"--config {path} is {size:,} bytes; a recipe config holds argument values and must be at most "
            f"{MAX_CONFIG_BYTES:,} bytes. Is this the right file?"
        )
    with path.open() as stream:
        loader = _no_aliases_loader()(stream)
        loader.name = str(path)
        try:
            config = loader.get_single_data()
        except yaml.YAMLError as err:
            raise ValueError(f"--config {path} is not valid YAML: {err}") from None
        finally:
            loader.dispose()
    config = {} if config is None else config
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise ValueError(
            f"--config {path} must be a YAML mapping of argument names to values, found {type(config).__name__}"
        )
    return config


class Argument(typing.NamedTuple):
    type: typing.Any  # resolved annotation
    default: typing.Any


def argument_types(dataclass_types: Sequence[type]) -> dict[str, Argument]:
    """Every argument name of ``dataclass_types`` -> its resolved type and its default."""
    fields = {}
    for cls in dataclass_types:
        try:
            hints = typing.get_type_hints(cls)
        except (NameError, TypeError):  # an annotation that cannot be resolved: left unchecked
            hints = {}
        for f in dataclasses.fields(cls):
            if f.init:
                fields[f.name] = Argument(hints.get(f.name, typing.Any), f.default)
    return fields


def type_name(tp) -> str:
    """``float``, ``list[str] | None``, ``SchedulerType | str`` (module paths left out)."""
    import re

    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", str(tp))


def _is_union(tp) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def accepts(tp, value, from_text: bool = False) -> bool:
    """Whether ``value`` is a value of ``tp`` (``from_text``: a command-line string the parser will
    convert). YAML strings are also converted by the parser (argparse converts string defaults)."""
    if tp is typing.Any:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_union(tp):
        return any(accepts(a, value, from_text) for a in args)
    if tp is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args or str(value) in map(str, args)
    if origin in (list, tuple, set, Sequence) or tp in (list, tuple):
        if from_text:  # one command-line token is one element
            return not args or accepts(args[0], value, from_text)
        return isinstance(value, list) and all(accepts(args[0] if args else typing.Any, v) for v in value)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if tp is bool:
        return isinstance(value, bool) or (isinstance(value, str) and value.lower() in BOOL_STRINGS)
    if tp in (int, float):
        if isinstance(value, str):
            try:
                tp(value)
                return True
            except ValueError:
                return False
        return isinstance(value, (int, float) if tp is float else int) and not isinstance(value, bool)
    if tp is str:  # a YAML number where a name is expected (run_name: 2024) is written as text
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return isinstance(value, tp) or value in {m.value for m in tp} or value in tp.__members__
    if isinstance(tp, type):
        return isinstance(value, tp) or isinstance(value, str)  # Path and the like come from text
    return True


def check_value(name: str, value, field: Argument, source: str, from_text: bool = False) -> None:
    """Refuse ``value`` for argument ``name`` unless it is of the field's type (and, for ``labels``, a
    label set); ``source`` names where it came from (a file, ``--grid``)."""
    if value is None and field.default is None:
        return
    if not accepts(field.type, value, from_text):
        found = f"{type(value).__name__} {value!r}"
        members = typing.get_args(field.type) if _is_union(field.type) else (field.type,)
        takes_list = any(m is list or typing.get_origin(m) is list for m in members)
        hint = (
            "give a single value"
            if isinstance(value, (list, dict)) and not takes_list
            else f"write a {type_name(field.type)}"
        )
        raise ValueError(
            f"{source}: `{name}` expects {type_name(field.type)}, found {found[:120]}; {hint} "
            f"(or set it with --{name} on the command line)."
        )
    if name == "labels" and value is not None and not from_text:
        check_labels(value, f"{source}: labels")


def check_config(config: dict, dataclass_types: Sequence[type], path: str | Path) -> None:
    """Every key of a recipe YAML is an argument of the recipe and every value is of its type."""
    import difflib

    fields = argument_types(dataclass_types)
    for key, value in config.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=3)
            raise ValueError(
                f"--config {path}: `{key}` is not an argument of this recipe"
                + (f" (did you mean {', '.join(close)}?)" if close else "")
                + "; remove it or fix its name."
            )
        check_value(key, value, fields[key], f"--config {path}")


# (argument, what it must be, test) for the numbers a run trains with, checked right after parsing:
# torch would refuse some only once the run folder and the encoder cache are written, and take
# others (NaN) silently.
TRAINING_VALUES = (
    ("learning_rate", "a finite number > 0", lambda v: math.isfinite(v) and v > 0),
    ("lora_learning_rate", "a finite number > 0 (or unset)", lambda v: math.isfinite(v) and v > 0),
    ("phase3_lora_learning_rate", "a finite number > 0 (or unset)", lambda v: math.isfinite(v) and v > 0),
    ("prosody_learning_rate", "a finite number > 0 (or unset)", lambda v: math.isfinite(v) and v > 0),
    ("per_device_train_batch_size", "a whole number >= 1", lambda v: v >= 1),
    ("per_device_eval_batch_size", "a whole number >= 1", lambda v: v >= 1),
    ("gradient_accumulation_steps", "a whole number >= 1", lambda v: v >= 1),
    ("warmup_steps", "a number >= 0", lambda v: math.isfinite(v) and v >= 0),
    ("max_grad_norm", "a finite number >= 0 (0: no clipping)", lambda v: math.isfinite(v) and v >= 0),
    ("weight_decay", "a finite number >= 0", lambda v: math.isfinite(v) and v >= 0),
    ("num_train_epochs", "a finite number", math.isfinite),
)


def check_training_values(*parsed) -> None:
    """Refuse training numbers out of range (TRAINING_VALUES) in any of the ``parsed`` argument
    dataclasses (TrainingArguments and the recipe's own, e.g. ``lora_learning_rate``), before anything
    is written."""
    for args in parsed:
        for name, expected, ok in TRAINING_VALUES:
            value = getattr(args, name, None)
            if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not ok(value):
                raise ValueError(
                    f"--{name} must be {expected}, found {value}; fix --{name} on the command line or in the "
                    "recipe's --config."
                )


def check_labels(labels, source: str = "labels") -> list[str]:
    """A label set is a list of at least two distinct, non-empty strings; duplicates are named with
    their positions."""
    if isinstance(labels, (str, bytes)) or not isinstance(labels, (list, tuple)):
        raise ValueError(
            f"{source} must be a list of label names (e.g. [neutral, happy, sad]), found {type(labels).__name__} "
            f"{labels!r:.80}"
        )
    for i, label in enumerate(labels, 1):
        if not isinstance(label, str) or not label.strip():
            raise ValueError(
                f"{source}: entry {i} is {type(label).__name__} {label!r:.60}; each label must be a non-empty "
                "name. Write the labels as a flat list of names."
            )
    from serhub.metrics.ser_metrics.ser_metrics import (
        check_unique,  # the metric's own check (it is self-contained)
    )

    check_unique(labels, source)
    if len(labels) < 2:
        raise ValueError(
            f"{source} has {len(labels)} label(s) {list(labels)}; a classifier needs at least two."
        )
    return list(labels)


__all__ = [
    "MAX_CONFIG_BYTES",
    "accepts",
    "argument_types",
    "check_config",
    "check_labels",
    "check_training_values",
    "check_value",
    "load_config",
    "type_name",
]
