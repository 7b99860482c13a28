"""Emotion along a recording of any length: voice activity -> segments -> any serhub model.

    serhub timeline call.mp3 --model outputs/ssl_classifier --output_dir call-emotions
    serhub timeline talk.wav --model outputs/ssl_classifier-speaker_prosody --output_dir out --enroll ref.wav
    python -m serhub.timeline call.mp3 --model outputs/ssl_classifier --output_dir call-emotions

The audio (any format ffmpeg reads, video included, any length) is decoded to 16 kHz mono as a stream,
twice: first Silero VAD (``silero-vad``, its weights ship in the wheel) finds the speech, then each speech
segment (split when longer than ``--max_segment``) is classified with
``pipeline("audio-classification")`` on the model. Memory stays bounded: the stream is read in
blocks, and only the segments being classified are held. ``--vad none`` classifies fixed windows
(``--window``, ``--hop``) instead. ``--smoothing k`` averages each segment's probabilities with its
k-1 neighbours. Writes ``timeline.json``, ``timeline.csv`` and ``timeline.png`` (class probabilities
over time, segments shaded by label). In Python, :func:`emotion_timeline` returns the segment dicts.
A file that decodes shorter than it declares (a cut download, a truncated WAV) is warned about with both
durations, which ``timeline.json`` records (``declared_duration``, ``decoded_duration``).

A segment is ``{"start": s, "end": s, "label": str, "score": p, "probabilities": {label: p}}``, plus
``"dimensions": {"arousal": x, ...}`` when the model has a dimensional head, and ``"answer"`` /
``"transcript"`` when it is an audio-LLM that writes answers ("| ASR: <t> | Emotion: <label>", EmoSLLM).
Long input goes through this function rather than ``pipeline(..., chunk_length_s=...)``: transformers'
chunking is for CTC/seq2seq ASR (it stitches token streams); an emotion label per window needs the
speech boundaries, the windows and the per-window probabilities kept apart. The segmentation is in
:mod:`serhub.timeline_segments`, the output files in :mod:`serhub.timeline_outputs`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from serhub.audio_io import SAMPLING_RATE, audio_durations, stream_audio
from serhub.loading import dimensional_values, load_answer_writer, load_classifier
from serhub.modeling.file_utils import check_output_dir
from serhub.modeling.prompting_audio_llm import parse_answer
from serhub.timeline_outputs import plot_timeline, write_timeline
from serhub.timeline_segments import (
    DEFAULT_PAD,
    VAD_FRAME,
    check_arguments,
    fixed_windows,
    segment_audio,
    speech_regions,
)


def emotion_timeline(
    audio_path: str | Path,
    model,
    vad: str = "silero",
    window: float = 3.0,
    hop: float = 3.0,
    min_speech: float = 0.25,
    max_segment: float = 10.0,
    smoothing: int = 1,
    batch_size: int = 8,
    progress: bool = True,
    pad: float = DEFAULT_PAD,
    answers=None,
    return_durations: bool = False,
    enroll: list[str] | None = None,
    enroll_self: bool = False,
) -> list[dict] | tuple[list[dict], dict]:
    """Segments of ``audio_path`` with their emotion; ``model``: a path, Hub id or a ready
    ``pipeline("audio-classification")``. Empty when the file has no speech. ``answers``: also write
    each segment's answer and transcript (audio-LLMs trained to write them; None: whenever the model
    can, False: never, True: required, or a ready ``load_answer_writer`` result).
    ``return_durations``: return ``(segments, audio_durations(...))``, the file's declared and decoded
    durations (a file that decodes shorter than it declares is warned about either way).
    ``enroll``: recordings of the one speaker of the file (a neutral one preferably), for a model
    trained relative to the speaker (``--speaker_prosody``; the speech classifier's ``--speaker_norm``).
    ``enroll_self``: the file is its own reference instead (one speaker): the model is enrolled on its
    speech segments (up to ``SELF_REFERENCE_CLIPS`` of them, evenly spread) and forgets them at the end."""
    from tqdm.auto import tqdm

    if vad not in ("silero", "none"):
        raise ValueError(f"vad must be 'silero' or 'none', got {vad!r}")
    check_arguments(
        window=window, hop=hop, min_speech=min_speech, max_segment=max_segment, pad=pad,
        smoothing=smoothing, batch_size=batch_size,
    )  # fmt: skip
    if enroll and enroll_self:
        raise ValueError(
            "--enroll and --enroll_self are two references for the one speaker: give one of them"
        )
    classifier = model if callable(model) else load_classifier(model)
    if enroll:
        from serhub.predict import enroll as enroll_speaker

        enroll_speaker(classifier, enroll)
    elif enroll_self:
        from serhub.predict import check_can_enroll

        check_can_enroll(classifier, "--enroll_self")
    config = getattr(getattr(classifier, "model", None), "config", None)
    order = [config.id2label[i] for i in range(len(config.id2label))] if config is not None else None
    dimensions = list(getattr(config, "dimensions", None) or [])
    writer = _answer_writer(model, classifier, answers)
    if vad == "silero":
        regions, total = speech_regions(
            audio_path, min_speech=min_speech, max_segment=max_segment, progress=progress, pad=pad
        )
    else:
        total = sum(len(b) for b in stream_audio(audio_path))
        regions = fixed_windows(total, window, hop)
    durations = audio_durations(audio_path, total)  # a cut file is reported before the slow part
    if enroll_self:
        _enroll_on_own_segments(classifier, audio_path, regions)
    segments = []
    bar = tqdm(total=len(regions), desc="classifying", unit="segment", disable=not progress)
    try:
        for batch, spans in _batches(audio_path, regions, batch_size):
            segments += _classify(classifier, batch, spans, order, dimensions, writer)
            bar.update(len(batch))
    finally:
        bar.close()
        if enroll_self:
            classifier.model.forget_speaker()
    segments = _label(_smooth(segments, smoothing))
    return (segments, durations) if return_durations else segments


def _enroll_on_own_segments(classifier, audio_path, regions: list[tuple[int, int]]) -> None:
    """Enrol the file's speaker on its own speech: up to ``SELF_REFERENCE_CLIPS`` of its segments,
    evenly spread; a file with fewer than 2 segments is refused (a segment is no reference for itself)."""
    from serhub.evaluate_data import SELF_REFERENCE_CLIPS, spread
    from serhub.predict import enroll_clips

    if len(regions) < 2:
        raise ValueError(
            f"--enroll_self: {audio_path} has {len(regions)} speech segment(s); its own reference needs at least 2. "
            "Enrol the speaker on other recordings (--enroll REFERENCE) or leave --enroll_self out."
        )
    picks = spread(len(regions), SELF_REFERENCE_CLIPS)
    clips = [c for c in segment_audio(audio_path, [regions[k] for k in picks]) if len(c)]
    enroll_clips(classifier, clips)


def _answer_writer(model, classifier, answers):
    """The ``load_answer_writer`` result that writes each segment's answer, or None (see ``answers`` of
    :func:`emotion_timeline`)."""
    writer = answers if callable(answers) else None  # a ready load_answer_writer(...) result
    if writer is None and answers is not False:
        source = (
            model
            if not callable(model)
            else getattr(getattr(classifier, "model", None), "name_or_path", None)
        )
        writer = load_answer_writer(source) if source else None
        if answers and writer is None:
            raise ValueError(f"{source} does not write answers (only audio-LLMs saved for generation do)")
    return writer


def _batches(audio_path, regions: list[tuple[int, int]], batch_size: int):
    """``(samples, spans)`` of up to ``batch_size`` non-empty regions at a time, in order."""
    batch, spans = [], []
    for region, samples in zip(regions, segment_audio(audio_path, regions)):
        if len(samples) == 0:
            continue
        batch.append(samples)
        spans.append(region)
        if len(batch) == batch_size:
            yield batch, spans
            batch, spans = [], []
    if batch:
        yield batch, spans


def _classify(classifier, batch, spans, order, dimensions, writer) -> list[dict]:
    """One batch's segments: start and end (s), the probabilities in the model's label order, and the
    dimensions and the answer where the model gives them."""
    results = classifier(list(batch), top_k=None)
    values = dimensional_values(classifier, batch) if dimensions else [None] * len(batch)
    written = writer(list(batch)) if writer else [None] * len(batch)
    segments = []
    for (start, end), scores, dims, answer in zip(spans, results, values, written):
        probabilities = {r["label"]: float(r["score"]) for r in scores}
        if order:  # the model's label order, so every file's columns are the same
            probabilities = {label: probabilities[label] for label in order}
        segment = {
            "start": start / SAMPLING_RATE,
            "end": end / SAMPLING_RATE,
            "probabilities": probabilities,
        }
        if dims is not None:
            segment["dimensions"] = dict(zip(dimensions, dims))
        if answer is not None:
            segment["answer"], segment["transcript"] = answer, parse_answer(answer)["transcript"] or ""
        segments.append(segment)
    return segments


def _smooth(segments: list[dict], k: int) -> list[dict]:
    """Each segment's probabilities (and dimensions) averaged with its k-1 neighbours: a centred moving
    average (k // 2 before, the rest after) over the neighbours that exist, so it holds at the ends and
    for any k, larger than the number of segments included."""
    if k == 1 or not segments:
        return segments
    out = [dict(s) for s in segments]
    n = len(segments)
    lo = np.clip(np.arange(n) - k // 2, 0, n)  # window of segment i: [lo[i], hi[i])
    hi = np.clip(np.arange(n) + k - k // 2, 0, n)
    for key in ("probabilities", "dimensions"):
        if key not in segments[0]:
            continue
        names = list(segments[0][key])
        values = np.array([[s[key][name] for name in names] for s in segments], dtype=np.float64)
        sums = np.concatenate([np.zeros((1, len(names))), np.cumsum(values, axis=0)])
        smoothed = (sums[hi] - sums[lo]) / (hi - lo)[:, None]
        for segment, row in zip(out, smoothed):
            segment[key] = dict(zip(names, map(float, row)))
    return out


def _label(segments: list[dict]) -> list[dict]:
    out = []
    for s in segments:
        label, score = max(s["probabilities"].items(), key=lambda kv: kv[1])
        out.append(
            {
                "start": round(s["start"], 3),
                "end": round(s["end"], 3),
                "label": label,
                "score": score,
                "probabilities": s["probabilities"],
                **{k: s[k] for k in ("dimensions", "answer", "transcript") if k in s},
            }
        )
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", help="an audio or video file of any length")
    parser.add_argument("--model", required=True, help="a serhub model folder or Hub id")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--vad", choices=("silero", "none"), default="silero", help="none: fixed windows")
    parser.add_argument("--window", type=float, default=3.0, help="seconds per window with --vad none")
    parser.add_argument("--hop", type=float, default=3.0, help="seconds between windows with --vad none")
    parser.add_argument("--min_speech", type=float, default=0.25, help="shortest speech segment kept (s)")
    parser.add_argument("--max_segment", type=float, default=10.0, help="longer speech is split (s)")
    parser.add_argument(
        "--pad",
        type=float,
        default=DEFAULT_PAD,
        help="context kept around each speech segment (s); neighbours closer than twice this share the gap",
    )
    parser.add_argument(
        "--smoothing", type=int, default=1, help="average over this many neighbouring segments"
    )
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument(
        "--answers",
        choices=("auto", "yes", "no"),
        default="auto",
        help="write each segment's transcript with an audio-LLM that writes answers (auto: when it can)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty folder (its timeline files are replaced)",
    )
    parser.add_argument(
        "--enroll",
        nargs="+",
        metavar="REFERENCE",
        default=None,
        help="recordings of the one speaker of the file (a neutral one preferably): a model trained relative to "
        "the speaker (--speaker_prosody, --speaker_norm) reads every segment relative to them",
    )
    parser.add_argument(
        "--enroll_self",
        action="store_true",
        help="the file is its own reference (one speaker): such a model reads every segment relative to the "
        "file's own speech segments, with no reference recordings",
    )


def run(args: argparse.Namespace) -> list[dict]:
    check_output_dir(args.output_dir, args.overwrite)  # before the slow part
    segments, durations = emotion_timeline(
        args.audio,
        args.model,
        args.vad,
        args.window,
        args.hop,
        args.min_speech,
        args.max_segment,
        args.smoothing,
        args.batch_size,
        pad=args.pad,
        answers={"auto": None, "yes": True, "no": False}[getattr(args, "answers", "auto")],
        return_durations=True,
        enroll=getattr(args, "enroll", None),
        enroll_self=getattr(args, "enroll_self", False),
    )
    write_timeline(
        segments, args.output_dir, str(args.audio), str(args.model), args.overwrite, durations=durations
    )
    print(f"{len(segments)} segments -> {args.output_dir}/timeline.json, .csv, .png")
    return segments


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()


__all__ = [
    "VAD_FRAME",
    "check_arguments",
    "emotion_timeline",
    "fixed_windows",
    "plot_timeline",
    "segment_audio",
    "speech_regions",
    "write_timeline",
]
