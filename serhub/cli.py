"""``serhub`` on the command line: ``serhub timeline AUDIO --model M --output_dir OUT`` and
``serhub export-onnx --model M --output_dir OUT`` (the same as ``python -m serhub.modeling.timeline`` /
``python -m serhub.modeling.export_onnx``)."""

from __future__ import annotations

import argparse


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="serhub", description="speech emotion recognition tools")
    commands = parser.add_subparsers(dest="command", required=True)
    from serhub.modeling import timeline

    timeline.add_arguments(commands.add_parser("timeline", help="emotion along a recording of any length"))
    onnx = commands.add_parser("export-onnx", help="export a speech classifier to ONNX (parity checked)")
    onnx.add_argument("--model", required=True)
    onnx.add_argument("--output_dir", required=True)
    onnx.add_argument("--opset", type=int, default=18)
    onnx.add_argument("--tolerance", type=float, default=1e-4)
    onnx.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "timeline":
        timeline.run(args)
        return
    from serhub.modeling.export_onnx import export_onnx

    report = export_onnx(args.model, args.output_dir, args.opset, args.tolerance, args.overwrite)
    print(
        f"exported to {args.output_dir}: max |logit difference| to PyTorch {report['max_abs_difference']:.2e}"
    )
    return report


if __name__ == "__main__":
    main()
