"""``serhub`` on the command line: ``serhub timeline AUDIO --model M --output_dir OUT``, ``serhub
export-onnx --model M --output_dir OUT``, ``serhub evaluate --model M --dataset D --output_dir OUT`` and
``serhub predict FILES_OR_DIR --model M --output preds.csv`` (the same as ``python -m serhub.<name>``)."""

from __future__ import annotations

import argparse


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="serhub", description="speech emotion recognition tools")
    commands = parser.add_subparsers(dest="command", required=True)
    from serhub import evaluate, export_onnx, predict, timeline

    tools = {"timeline": timeline, "export-onnx": export_onnx, "evaluate": evaluate, "predict": predict}
    timeline.add_arguments(commands.add_parser("timeline", help="emotion along a recording of any length"))
    export_onnx.add_arguments(
        commands.add_parser("export-onnx", help="export a speech classifier to ONNX (parity checked)")
    )
    evaluate.add_arguments(
        commands.add_parser(
            "evaluate", help="a model on a dataset split: report card, intervals, calibration"
        )
    )
    predict.add_arguments(commands.add_parser("predict", help="classify audio files into a CSV (resumable)"))
    args = parser.parse_args(argv)
    # nothing is returned: the console script passes main()'s value to sys.exit, where anything but
    # None or 0 is a failure. The results are in the output files (and each tool's run() value).
    tools[args.command].run(args)


def command(argv=None) -> None:
    """The ``serhub`` console script: :func:`main`, ending an error you can fix with one line,
    ``serhub <tool>: error: <message>`` (exit status 2; ``SERHUB_DEBUG=1`` prints the traceback too)."""
    import sys

    from serhub.recipes.logs import run_main

    words = sys.argv[1:] if argv is None else argv
    tool = next((w for w in words if not w.startswith("-")), "")
    run_main(main, words, name=tool or None)


if __name__ == "__main__":
    command()
