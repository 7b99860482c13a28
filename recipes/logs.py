"""Logging for the recipes: one ``serhub`` logger tree, a level per process, as transformers'
examples and alignment-handbook set it up.

The main process logs at INFO (or ``--log_level``), the other DDP ranks at WARNING (or
``--log_level_replica``), so a 2-process run prints each message once. INFO and below go to stdout,
warnings and errors to stderr. An explicit ``--log_level`` also sets transformers' and datasets'
verbosity.

A recipe run as a command goes through ``run_main``: an error the user can fix ends the run with one
line on stderr, ``serhub <recipe>: error: <message>``, its last (exit status 2); the traceback is
printed too with ``SERHUB_DEBUG=1`` or ``--log_level debug``. Under ``accelerate launch`` that line
is the last one with ``accelerate launch -q`` (without it accelerate adds its own traceback after it).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

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


# errors whose message says what was expected and what to do (the recipes' checks raise ValueError,
# OutputDirError among them; a missing file or model folder, a refused write: OSError)
USER_ERRORS = (ValueError, OSError)
USER_ERROR_EXIT, BUG_EXIT, INTERRUPTED_EXIT = 2, 1, 130


def debugging(argv: list[str] | None = None) -> bool:
    """``SERHUB_DEBUG=1``, or ``--log_level debug`` given or in effect."""
    argv = sys.argv[1:] if argv is None else argv
    given = any(
        a == "--log_level=debug" or (a == "--log_level" and argv[i + 1 : i + 2] == ["debug"])
        for i, a in enumerate(argv)
    )
    return (
        os.environ.get("SERHUB_DEBUG", "0") not in ("", "0")
        or given
        or logging.getLogger(ROOT).level == logging.DEBUG
    )


def run_main(main: Callable, argv: list[str] | None = None, name: str | None = None) -> None:
    """Run a recipe's ``main(argv)`` as a command and exit: 0 when it returns, 2 with one line
    ``serhub <recipe>: error: <message>`` for a user error (``USER_ERRORS``), 1 for anything else
    (a bug: the traceback, then that line), 130 when interrupted. ``<recipe>`` is ``name``, by default
    the file ``main`` is defined in. Used as ``run_main(main)`` in a recipe's ``if __name__ ==
    "__main__":`` block, and by the ``serhub`` command for its tools."""
    recipe = name or Path(main.__code__.co_filename).stem
    try:
        main(argv)
    except KeyboardInterrupt:
        _last_line(f"serhub {recipe}: interrupted")
        sys.exit(INTERRUPTED_EXIT)
    except USER_ERRORS as err:
        if debugging(argv):
            traceback.print_exc()
        _last_line(f"serhub {recipe}: error: {one_line(err)}")
        sys.exit(USER_ERROR_EXIT)
    except Exception as err:  # noqa: BLE001 (a bug: the whole traceback, then the line that names it)
        traceback.print_exc()
        _last_line(
            f"serhub {recipe}: internal error: {type(err).__name__}: {one_line(err)} (traceback above)"
        )
        sys.exit(BUG_EXIT)
    sys.exit(0)


def one_line(err: BaseException) -> str:
    """An exception's message on one line (an OSError's errno and file included, as str() gives them)."""
    return " ".join(str(err).split()) or type(err).__name__


def _last_line(text: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


__all__ = ["debugging", "get_logger", "run_main", "setup_logging"]
