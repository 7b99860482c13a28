"""Logging for the recipes: one ``serhub`` logger tree, a level per process, as transformers'
examples and alignment-handbook set it up.

The main process logs at INFO (or ``--log_level``), the other DDP ranks at WARNING (or
``--log_level_replica``), so a 2-process run prints each message once. INFO and below go to stdout,
warnings and errors to stderr. An explicit ``--log_level`` also sets transformers' and datasets'
verbosity.
"""

from __future__ import annotations

import logging
import sys

ROOT = "serhub"


class _ConsoleHandler(logging.Handler):
    """INFO and below to stdout, WARNING and above to stderr, looked up at each message (so a
    redirected or captured stream is followed). Lines read "[emosllm] ..." / "[emosllm] WARNING: ..."."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            name = record.name.removeprefix(f"{ROOT}.")
            warning = record.levelno >= logging.WARNING
            text = (
                f"[{name}] {record.levelname}: {record.getMessage()}"
                if warning
                else f"[{name}] {record.getMessage()}"
            )
            stream = sys.stderr if warning else sys.stdout
            stream.write(text + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 (logging must never raise)
            self.handleError(record)


def get_logger(name: str) -> logging.Logger:
    """``serhub.<name>``: e.g. ``get_logger("emosllm")`` prints "[emosllm] ..." lines."""
    return logging.getLogger(f"{ROOT}.{name}")


def setup_logging(training_args=None) -> logging.Logger:
    """Attach the console handler once and set this process's level from ``training_args``: the
    main process at ``--log_level`` (default INFO), the others at ``--log_level_replica`` (WARNING)."""
    root = logging.getLogger(ROOT)
    if not any(isinstance(h, _ConsoleHandler) for h in root.handlers):
        root.addHandler(_ConsoleHandler())
    level = logging.INFO
    if training_args is not None:
        chosen = training_args.get_process_log_level()
        if not training_args.should_log:
            level = chosen
        elif training_args.log_level != "passive":
            import datasets
            import transformers

            level = chosen
            transformers.utils.logging.set_verbosity(chosen)
            datasets.utils.logging.set_verbosity(chosen)
    root.setLevel(level)
    return root


__all__ = ["get_logger", "setup_logging"]
