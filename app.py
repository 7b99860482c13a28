"""serhub demo: speech emotion recognition in the browser (a Gradio app, Hugging Face Spaces layout).

    python app.py                                  # models found under outputs/ (what the recipes write)
    python app.py --models path/to/models --port 7860
    SERHUB_DEMO_MODELS=dir1:dir2 python app.py     # the same, for a Space's settings

Upload or record audio, pick one of the models the operator listed at start, and see the top labels
with their probabilities. Visitors choose only among those: the page never loads a folder or Hub id
they type (``--allow_any_model`` adds such a box, for a demo on your own machine only), every model
runs with serhub's installed code (never code that came with the model), and errors shown on the page
name no server path. Input longer than ``--long_input`` seconds also gets the emotion timeline (voice
activity segments classified one by one, ``serhub timeline``'s plot), and the whole file's labels
are the duration-weighted mean of its segments. Audio-LLM models (EmoSLLM, Whisper-LLM) also write
their answer, "| ASR: <transcript> | Emotion: <label>", shown beside the labels. Everything runs
offline on the folders the recipes produce; with none trained yet the page says how to make one.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no usage reporting

DEFAULT_ROOTS = ("outputs",)
LONG_INPUT_S = 12.0
NO_MODEL_MESSAGE = (
    "No trained serhub model was found under {roots}. Train one first, e.g. "
    "`.venv/bin/accelerate launch recipes/ssl_classifier.py` (about 2 minutes on a CPU) writes "
    "outputs/ssl_classifier, then restart the demo."
)
logger = logging.getLogger("serhub.demo")


def find_models(roots) -> dict[str, str]:
    """``{display name: folder}`` of the serhub models in ``roots`` (each root itself and its
    sub-folders, one level deep): folders whose config.json names a serhub model type."""
    found = {}
    for root in map(Path, roots):
        candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []
        for folder in candidates:
            try:
                model_type = json.loads((folder / "config.json").read_text()).get("model_type", "")
            except (OSError, ValueError):
                continue
            if model_type.startswith("ser_"):
                found[f"{folder.name} ({model_type[4:]})"] = str(folder)
    return found


@functools.lru_cache(maxsize=4)
def _classifier(model: str):
    from serhub.loading import load_classifier

    return load_classifier(model)


@functools.lru_cache(maxsize=2)
def _answer_writer(model: str):
    """Writes answers for audio-LLMs trained to (EmoSLLM); None for models that only classify."""
    from serhub.loading import load_answer_writer

    return load_answer_writer(model)


def write_answer(model: str, samples) -> str | None:
    """The audio-LLM's written answer ("| ASR: <t> | Emotion: <label>") for 16 kHz ``samples``."""
    writer = _answer_writer(model)
    return writer([samples])[0] if writer is not None else None


def transcript_of(answer: str | None) -> str:
    """The transcript part of an "| ASR: <t> | Emotion: <label>" answer ("" when there is none)."""
    from serhub.modeling.prompting_audio_llm import parse_answer

    return parse_answer(answer or "")["transcript"] or ""


def analyse(audio_path, model: str, long_input_s: float = LONG_INPUT_S, plot_dir=None, name=None) -> dict:
    """Everything the page shows for one file: ``labels`` ({label: probability}), ``plot`` (the
    timeline PNG for long input, written into ``plot_dir``, else None), ``segments``, ``transcript``
    and ``answer`` (audio-LLMs), ``duration`` (s). Raises ValueError with what to do when the input or
    the model is unusable; its message names the model as ``name`` (default: ``model``) and carries
    no exception text (the details go to the log)."""
    import numpy as np
    from serhub.modeling.remote_code import UntrustedModelError

    from serhub.audio_io import duration, stream_audio
    from serhub.timeline import emotion_timeline, plot_timeline

    if not audio_path:
        raise ValueError("No audio: upload a file or record from the microphone first.")
    if not model or not str(model).strip():
        raise ValueError("No model: pick a model folder or type a folder path or Hub id.")
    model = str(model).strip()
    name = name or model
    if (Path(model).exists() or model.startswith((".", "/"))) and not (Path(model) / "config.json").is_file():
        raise ValueError(f"{name} is not a model folder (it has no config.json).")
    try:
        seconds = duration(audio_path)
        samples = None
        if seconds is None or seconds <= long_input_s:
            samples = np.concatenate([np.zeros(0, np.float32), *stream_audio(audio_path)])
            seconds = len(samples) / 16000
    except (OSError, RuntimeError, ValueError) as error:
        logger.warning("could not read %s: %s", audio_path, error)
        raise ValueError(
            f"Could not read {Path(audio_path).name} as audio: is it a sound file (wav, mp3, flac, ogg...)?"
        ) from error
    try:
        classifier = _classifier(model)
    except UntrustedModelError as error:
        logger.warning("refused %s: %s", model, error)
        raise ValueError(f"The model {name} is not a serhub model: this demo does not run it.") from error
    except (OSError, ValueError) as error:  # not a folder, not on the Hub, or no network to reach it
        logger.warning("could not load %s: %s", model, error)
        raise ValueError(
            f"Could not load the model {name}: it is not a usable model folder or Hub id."
        ) from error
    result = {"duration": seconds, "plot": None, "segments": [], "answer": None, "transcript": ""}
    if samples is not None:
        if len(samples) == 0:
            raise ValueError(f"{Path(audio_path).name} holds no audio samples.")
        scores = classifier(samples, top_k=None)
        result["labels"] = {s["label"]: float(s["score"]) for s in scores}
        result["answer"] = write_answer(model, samples)
        result["transcript"] = transcript_of(result["answer"])
        return result
    segments = emotion_timeline(
        audio_path, classifier, progress=False, answers=_answer_writer(model) or False
    )
    result["segments"] = segments
    if segments and "answer" in segments[0]:
        result["answer"] = "\n".join(f"{s['start']:.1f}-{s['end']:.1f} s: {s['answer']}" for s in segments)
        result["transcript"] = " ".join(s["transcript"] for s in segments).strip()
    if plot_dir is not None:
        result["plot"] = str(
            plot_timeline(segments, Path(plot_dir) / "timeline.png", title=Path(audio_path).name)
        )
    if segments:
        weights = np.array([s["end"] - s["start"] for s in segments])
        labels = list(segments[0]["probabilities"])
        probs = np.array([[s["probabilities"][label] for label in labels] for s in segments])
        result["labels"] = dict(zip(labels, map(float, weights @ probs / weights.sum())))
    else:
        result["labels"] = {}
    return result


def classify(
    audio_path,
    picked,
    typed=None,
    *,
    models: dict[str, str],
    allow_any_model=False,
    long_input_s: float = LONG_INPUT_S,
    roots=DEFAULT_ROOTS,
):
    """The page's button: ``(labels, timeline image, answer, status)`` for a visitor's request.

    ``picked`` must be one of ``models``' display names (a request naming anything else is refused);
    ``typed`` (a folder or Hub id) is honoured only with ``allow_any_model``. Errors are ``gr.Error``
    with a message fit to show a visitor."""
    import gradio as gr

    typed = (typed or "").strip() if allow_any_model else ""
    if typed:
        model, name = typed, typed
    elif picked in models:
        model, name = models[picked], picked
    elif not models:
        raise gr.Error(NO_MODEL_MESSAGE.format(roots=", ".join(map(str, roots))))
    else:
        raise gr.Error(f"Pick one of this demo's models: {', '.join(models)}.")
    with tempfile.TemporaryDirectory(prefix="serhub-demo-") as plot_dir:
        try:
            result = analyse(audio_path, model, long_input_s, plot_dir=plot_dir, name=name)
        except ValueError as error:
            raise gr.Error(str(error)) from error
        except Exception as error:  # never show a visitor a traceback or a server path
            logger.exception("request failed on %s", model)
            raise gr.Error(
                f"The model {name} failed on this input; the server log has the details."
            ) from error
        plot = None
        if result["plot"]:
            from PIL import Image

            with Image.open(result["plot"]) as image:
                plot = image.copy()  # the image itself, so that no file outlives the request
    status = f"{result['duration']:.1f} s of audio, model {name}"
    if result["segments"] or plot is not None:
        status += f"; {len(result['segments'])} speech segments (timeline below)"
    return result["labels"], plot, result["answer"] or "", status


def build_demo(roots=DEFAULT_ROOTS, long_input_s: float = LONG_INPUT_S, allow_any_model: bool = False):
    import gradio as gr

    models = find_models(roots)
    names = list(models)
    run = functools.partial(
        classify, models=models, allow_any_model=allow_any_model, long_input_s=long_input_s, roots=roots
    )

    with gr.Blocks(title="serhub: speech emotion recognition") as demo:
        gr.Markdown(
            "# serhub: speech emotion recognition\n"
            "Upload or record speech, pick a model, press **Classify**. Input longer than "
            f"{long_input_s:g} s also gets an emotion timeline."
        )
        if not models:
            gr.Markdown(NO_MODEL_MESSAGE.format(roots=", ".join(map(str, roots))), elem_id="no-model")
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="speech")
                picked = gr.Dropdown(
                    choices=names, value=names[0] if names else None, label="model", elem_id="model"
                )
                typed = gr.Textbox(
                    label="or a model folder / Hub id", placeholder="outputs/emosllm", visible=allow_any_model
                )
                button = gr.Button("Classify", variant="primary", elem_id="classify")
            with gr.Column():
                labels = gr.Label(num_top_classes=5, label="emotion", elem_id="labels")
                answer = gr.Textbox(
                    label="the model's answer (audio-LLMs that write one: transcript, emotion)",
                    interactive=False,
                    elem_id="answer",
                )
                status = gr.Markdown(elem_id="status")
        plot = gr.Image(label="emotion over time", type="pil", interactive=False, elem_id="timeline")
        button.click(run, [audio, picked, typed], [labels, plot, answer, status])
    return demo


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    roots = os.environ.get("SERHUB_DEMO_MODELS")
    parser.add_argument(
        "--models",
        nargs="+",
        default=roots.split(os.pathsep) if roots else list(DEFAULT_ROOTS),
        help="folders holding trained models (each folder and its sub-folders are searched)",
    )
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument(
        "--long_input", type=float, default=LONG_INPUT_S, help="seconds above which a timeline is drawn"
    )
    parser.add_argument(
        "--allow_any_model",
        action="store_true",
        default=os.environ.get("SERHUB_DEMO_ALLOW_ANY_MODEL") == "1",
        help="UNSAFE on a public server: let visitors type any model folder or Hub id (still only serhub "
        "and transformers model types, never a model's own code)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.allow_any_model:
        logger.warning("--allow_any_model: visitors may load any model folder or Hub id this server can read")
    import gradio as gr

    # system fonts only: the default theme would fetch web fonts, and the demo must work offline
    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )
    build_demo(args.models, args.long_input, args.allow_any_model).launch(
        server_name=args.host, server_port=args.port, theme=theme, show_error=True
    )


if __name__ == "__main__":
    main()
