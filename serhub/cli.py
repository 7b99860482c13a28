"""``serhub`` on the command line: ``serhub timeline AUDIO --model M --output_dir OUT`` and
``serhub export-onnx --model M --output_dir OUT`` (the same as ``python -m serhub.timeline`` /
``python -m serhub.export_onnx``)."""

from __future__ import annotations

import argparse


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="serhub", description="speech emotion recognition tools")
    commands = parser.add_subparsers(dest="command", required=True)
    from serhub import export_onnx, timeline

    timeline.add_arguments(commands.add_parser("timeline", help="emotion along a recording of any length"))
    export_onnx.add_arguments(
        commands.add_parser("export-onnx", help="export a speech classifier to ONNX (parity checked)")
    )
    args = parser.parse_args(argv)
    # nothing is returned: the console script passes main()'s value to sys.exit, where anything but
    # None or 0 is a failure. The results are in the output folder (and export_onnx()'s return value).
    if args.command == "timeline":
        timeline.run(args)
    else:
        export_onnx.run(args)


if __name__ == "__main__":
    main()
