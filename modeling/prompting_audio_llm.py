"""The audio-LLM prompt format, in one place and without torch: what the processor writes, what the
model reads from its config, and what the recipes ask for.

- the chat: a cue, one audio placeholder per clip, an instruction from a bank of 20 per task with the
  emotion list shuffled (EmoSLLM sec. 3.3);
- the answers: "<transcript>" (ASR), "<label>" (SER), "| ASR: <transcript> | Emotion: <label>" (joint);
- how many audio tokens a clip becomes (encoder frames -> connector tokens);
- placeholder expansion and left padding (the last position is every row's next-token position).
"""

from __future__ import annotations

import random

import numpy as np

CUE = "Here are some audio tokens:"
AUDIO_TOKEN = "<|audio|>"
TASKS = ("asr", "ser", "asr+ser", "asr+des+ser")
ASR_PREFIX = "| ASR:"  # a joint answer starts with it; transcript_conditioned inference starts there
DESCRIPTORS_PREFIX = "| Descriptors:"  # "asr+des+ser": how the speech sounds, between transcript and emotion
EMOTION_PREFIX = "| Emotion:"  # follows the transcript in a joint answer; the label comes after it
TRANSCRIPT_STOP = " |"  # the token that ends the transcript of a joint answer

# 20 phrasings per task (EmoSLLM uses 20 per task to avoid over-fitting one wording).
_SER = [
    "What emotion does the speaker express? Answer with one word from: {labels}.",
    "Classify the speaker's emotion as one of {labels}.",
    "Which of these emotions is in the voice: {labels}? Reply with the emotion only.",
    "Identify the emotional state of the speaker. Options: {labels}.",
    "How does the speaker feel? Choose one of {labels}.",
    "Listen to the audio and name the emotion ({labels}).",
    "Pick the emotion that best describes this speech: {labels}.",
    "Emotion recognition task. Possible answers: {labels}. What is the emotion?",
    "Tell me the speaker's emotion, using one of: {labels}.",
    "Which emotion is conveyed here? Select from {labels}.",
    "Determine the emotion of the utterance. Candidates: {labels}.",
    "Label the emotion of this recording with one of {labels}.",
    "From {labels}, which emotion does the speaker show?",
    "What is the emotional tone of the speech? One of {labels}.",
    "Give the emotion category of the audio ({labels}).",
    "Recognise the emotion in the speaker's voice. Answer: one of {labels}.",
    "In one word ({labels}), what emotion is expressed?",
    "Decide which emotion the speaker is feeling: {labels}.",
    "Choose the speaker's emotion among {labels}.",
    "Emotion of the speaker? Options are {labels}.",
]
_ASR = [
    "Transcribe the audio.",
    "Write down what the speaker says.",
    "What is said in this recording?",
    "Provide a transcript of the speech.",
    "Convert the speech to text.",
    "Repeat the spoken words exactly.",
    "Give the transcription of the audio.",
    "Transcribe this utterance word for word.",
    "What does the speaker say?",
    "Write the speech as text.",
    "Produce the transcript of this clip.",
    "Type out the spoken content.",
    "Listen and transcribe.",
    "What words are spoken here?",
    "Turn this audio into text.",
    "Please transcribe the speech.",
    "Report exactly what is said.",
    "Write the words of the speaker.",
    "Give me the text of this recording.",
    "Transcribe the spoken sentence.",
]
_JOINT = ["First transcribe the speech. Then: " + s for s in _SER]
_DESCRIBED = [
    "First transcribe the speech, then describe how it sounds (pitch, intonation, speed, volume). Then: " + s
    for s in _SER
]
DEFAULT_PROMPTS = {"ser": _SER, "asr": _ASR, "asr+ser": _JOINT, "asr+des+ser": _DESCRIBED}
JOINT_FORMAT = f" Reply as: {ASR_PREFIX} <transcript> {EMOTION_PREFIX} <emotion>"
DESCRIBED_FORMAT = (
    f" Reply as: {ASR_PREFIX} <transcript> {DESCRIPTORS_PREFIX} <descriptors> {EMOTION_PREFIX} <emotion>"
)


# ------------------------------------------------------------------------------------ the chat
def instruction(
    prompts: dict,
    labels: list[str],
    task: str,
    rng: random.Random,
    prompt_index: int | None = None,
    shuffle_labels: bool = True,
) -> str:
    """One instruction of ``task``'s bank (``prompt_index``, or drawn with ``rng``), listing the labels."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    bank = prompts[task]
    template = bank[prompt_index % len(bank)] if prompt_index is not None else rng.choice(bank)
    labels = list(labels)
    if shuffle_labels:
        rng.shuffle(labels)
    text = template.format(labels=", ".join(labels))
    return text + {"asr+ser": JOINT_FORMAT, "asr+des+ser": DESCRIBED_FORMAT}.get(task, "")


def user_message(
    text: str,
    has_audio: bool,
    transcript: str | None = None,
    cue: str = CUE,
    audio_token: str = AUDIO_TOKEN,
    groups: tuple[str, ...] = ("",),
) -> list[dict]:
    """The chat (one user turn) for the LLM's chat template: the audio placeholder appears once per
    audio-token group ("content: <|audio|> speaking style: <|audio|>" for the two-branch connector)."""
    slots = " ".join(f"{g}: {audio_token}" if g else audio_token for g in groups)
    parts = [f"{cue} {slots}"] if has_audio else []
    if transcript is not None:
        parts.append(f"Transcript: {transcript}")
    parts.append(text)
    return [{"role": "user", "content": "\n".join(parts)}]


# ---------------------------------------------------------------------------------- the answers
def joint_answer(transcript: str, label: str | None = None) -> str:
    """The EmoSLLM joint-task answer; without ``label`` it ends right after "| Emotion:"."""
    text = f"{ASR_PREFIX} {transcript.strip()} {EMOTION_PREFIX}"
    return f"{text} {label}" if label is not None else text


def described_answer(transcript: str, descriptors: str, label: str | None = None) -> str:
    """The descriptor system's answer "| ASR: <t> | Descriptors: <d> | Emotion: <label>"."""
    text = f"{ASR_PREFIX} {transcript.strip()} {DESCRIPTORS_PREFIX} {descriptors.strip()} {EMOTION_PREFIX}"
    return f"{text} {label}" if label is not None else text


def parse_answer(answer: str) -> dict:
    """The parts of a written joint answer: ``{"transcript", "descriptors", "label"}``
    ("| ASR: press one | Emotion: happy" -> transcript "press one", label "happy"; "| Descriptors: ..."
    between them gives the descriptors); a part that is not there (a generation stopped early, free
    text, an answer without descriptors) is None."""
    transcript = descriptors = label = None
    text = answer or ""
    if ASR_PREFIX in text:
        rest = text.split(ASR_PREFIX, 1)[1]
        transcript = rest.split(EMOTION_PREFIX, 1)[0].split(DESCRIPTORS_PREFIX, 1)[0].strip()
    if DESCRIPTORS_PREFIX in text:
        descriptors = text.split(DESCRIPTORS_PREFIX, 1)[1].split(EMOTION_PREFIX, 1)[0].strip()
    if EMOTION_PREFIX in text:
        label = text.split(EMOTION_PREFIX, 1)[1].strip().split("\n")[0].strip() or None
    return {"transcript": transcript, "descriptors": descriptors, "label": label}


def answer_segments(
    task: str, transcript: str | None, label: str | None, end: str, descriptors: str | None = None
) -> list[tuple[str, bool]]:
    """The answer as (text, is_transcript) pieces, tokenised one by one: the joint answer is
    "| ASR: <t> | Emotion:" then " <label><end>", so a label's tokens are those the classifier
    scores after "| Emotion:". "asr+des+ser" puts " | Descriptors: <d>" (not transcript) between."""
    if task == "asr":
        return [((transcript or "") + end, True)]
    if task == "ser":
        return [((label or "") + end, False)]
    tail = (f" {label}{end}" if label is not None else end, False)
    if task == "asr+des+ser":
        return [
            (f"{ASR_PREFIX} {(transcript or '').strip()}", True),
            (f" {DESCRIPTORS_PREFIX} {(descriptors or '').strip()} {EMOTION_PREFIX}", False),
            tail,
        ]
    return [(joint_answer(transcript or ""), True), tail]


def label_text(label: str, after_prefix: bool) -> str:
    """A label as the answer on its own, or as written after "| Emotion:" (with a leading space)."""
    return f" {label}" if after_prefix else label


# ------------------------------------------------------------------------------ audio tokens
def encoder_output_frames(input_frames: int, convs) -> int:
    """Encoder frames made from ``input_frames`` feature frames (mel frames or samples)."""
    n = input_frames
    for kernel, stride, padding in convs:
        n = (n + 2 * padding - kernel) // stride + 1
    return max(n, 0)


def expand_audio_placeholders(input_ids: list[int], counts: list[int], audio_token_id: int) -> list[int]:
    """Repeat the i-th audio placeholder of ``input_ids`` ``counts[i]`` times (one per audio token)."""
    positions = [i for i, t in enumerate(input_ids) if t == audio_token_id]
    if len(positions) != len(counts):
        raise ValueError(
            f"the prompt has {len(positions)} audio placeholders but {len(counts)} audio-token groups were given; "
            "put exactly one placeholder per clip (per group of the connector) in the prompt."
        )
    out, start = [], 0
    for position, count in zip(positions, counts):
        out += input_ids[start:position] + [audio_token_id] * count
        start = position + 1
    return out + input_ids[start:]


def left_pad(rows: list[list[int]], pad_value: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows right-aligned in one (n, width) int64 array, and the mask of their valid positions."""
    width = max((len(r) for r in rows), default=0)
    values = np.full((len(rows), width), pad_value, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        if len(r):
            values[i, width - len(r) :] = r
            mask[i, width - len(r) :] = 1
    return values, mask


__all__ = [
    "ASR_PREFIX",
    "AUDIO_TOKEN",
    "CUE",
    "DEFAULT_PROMPTS",
    "DESCRIPTORS_PREFIX",
    "EMOTION_PREFIX",
    "TASKS",
    "answer_segments",
    "described_answer",
    "encoder_output_frames",
    "expand_audio_placeholders",
    "instruction",
    "joint_answer",
    "label_text",
    "left_pad",
    "user_message",
]
