"""AudioLLMProcessor: feature extractor + tokenizer + prompt builder for serhub's audio-LLMs.

It renders chat prompts with the LLM's chat template: a natural-language cue, one audio placeholder
per clip (expanded to the clip's number of audio tokens), and an instruction drawn from a bank of
prompts per task with the emotion list shuffled per sample (EmoSLLM, sec. 3.3). For training it
appends the answer and returns ``labels`` with everything but the answer masked to -100.

Tasks: "asr" (answer: the transcript), "ser" (answer: the label), "asr+ser" (answer:
"| ASR: <transcript> | Emotion: <label>"). Text-only prompts carry a transcript and no audio.
"""

from __future__ import annotations

import random

import numpy as np
from transformers import BatchFeature, ProcessorMixin

from .configuration_audio_llm import AUDIO_TOKEN, encoder_output_frames, expand_audio_placeholders

CUE = "Here are some audio tokens:"
TASKS = ("asr", "ser", "asr+ser")

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
DEFAULT_PROMPTS = {"ser": _SER, "asr": _ASR, "asr+ser": _JOINT}
JOINT_FORMAT = " Reply as: | ASR: <transcript> | Emotion: <emotion>"


def joint_answer(transcript: str, label: str | None = None) -> str:
    """The EmoSLLM joint-task answer; without ``label`` it ends right after "| Emotion:"."""
    text = f"| ASR: {transcript.strip()} | Emotion:"
    return f"{text} {label}" if label is not None else text


class AudioLLMProcessor(ProcessorMixin):
    r"""Args:
    feature_extractor: the encoder's feature extractor (serhub's ``SpeechEmotionFeatureExtractor``).
    tokenizer: the LLM's tokenizer, with a chat template; the audio placeholder token is added.
    labels: the emotion label set used in the prompts.
    num_queries / stack_factor / connector / encoder_convs: how many audio tokens a clip becomes.
    prompts: ``{task: [templates]}`` with ``{labels}`` fields; default: 20 per task.
    """

    def __init__(
        self,
        feature_extractor=None,
        tokenizer=None,
        labels: list[str] | None = None,
        audio_token: str = AUDIO_TOKEN,
        connector: str = "query_pooling",
        num_queries: int = 32,
        stack_factor: int = 4,
        encoder_convs: list | None = None,
        prompts: dict | None = None,
        cue: str = CUE,
        **kwargs,
    ):
        self.labels = list(labels or [])
        self.audio_token = audio_token
        self.connector = connector
        self.num_queries = num_queries
        self.stack_factor = stack_factor
        self.encoder_convs = [tuple(c) for c in (encoder_convs or [(3, 1, 1), (3, 2, 1)])]
        self.prompts = prompts or DEFAULT_PROMPTS
        self.cue = cue
        super().__init__(feature_extractor, tokenizer, **kwargs)
        if tokenizer is not None:
            if not getattr(tokenizer, "chat_template", None):
                raise ValueError(
                    "the LLM tokenizer has no chat template; audio-LLM prompts are rendered with it. Use an "
                    "instruct/chat model or set tokenizer.chat_template."
                )
            if audio_token not in tokenizer.get_vocab():
                tokenizer.add_special_tokens({"additional_special_tokens": [audio_token]})
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token

    @property
    def audio_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(self.audio_token)

    def num_audio_tokens(self, feature_frames: int) -> int:
        """Audio tokens of a clip with ``feature_frames`` feature-extractor frames (or samples)."""
        return self.num_audio_tokens_from_frames(encoder_output_frames(feature_frames, self.encoder_convs))

    def num_audio_tokens_from_frames(self, encoder_frames: int) -> int:
        """Audio tokens made from ``encoder_frames`` encoder output frames."""
        if self.connector == "query_pooling":
            return self.num_queries
        return -(-encoder_frames // self.stack_factor)

    # ------------------------------------------------------------------ prompts
    def instruction(
        self, task: str, rng: random.Random, prompt_index: int | None = None, shuffle_labels: bool = True
    ) -> str:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
        bank = self.prompts[task]
        template = bank[prompt_index % len(bank)] if prompt_index is not None else rng.choice(bank)
        labels = list(self.labels)
        if shuffle_labels:
            rng.shuffle(labels)
        text = template.format(labels=", ".join(labels))
        return text + JOINT_FORMAT if task == "asr+ser" else text

    def render(
        self,
        instruction: str,
        has_audio: bool,
        transcript_in_prompt: str | None = None,
        answer: str | None = None,
    ) -> str:
        """One chat as text: the audio placeholder appears once (expanded later, in token space)."""
        parts = []
        if has_audio:
            parts.append(f"{self.cue} {self.audio_token}")
        if transcript_in_prompt is not None:
            parts.append(f"Transcript: {transcript_in_prompt}")
        parts.append(instruction)
        messages = [{"role": "user", "content": "\n".join(parts)}]
        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return prompt if answer is None else prompt + answer + self._end_of_turn()

    def _end_of_turn(self) -> str:
        return self.tokenizer.eos_token or ""

    # ------------------------------------------------------------------ call
    def __call__(
        self,
        audio=None,
        text: list[str] | str | None = None,
        task: str = "ser",
        labels: list[str] | str | None = None,
        transcripts: list[str] | str | None = None,
        sampling_rate: int | None = None,
        return_tensors: str | None = "pt",
        prompt_index: int | None = None,
        shuffle_labels: bool = True,
        seed: int | None = None,
        answer_prefix: str | None = None,
        return_asr_mask: bool = False,
        audio_token_counts: list[int] | None = None,
        **kwargs,
    ) -> BatchFeature:
        r"""Build model inputs.

        audio: one clip or a list (16 kHz arrays); None for text-only prompts.
        text: transcripts to put in the prompt (text-only or audio+transcript input).
        task: "ser" | "asr" | "asr+ser".
        labels / transcripts: the answers, for training: ``labels`` (emotion names) and
            ``transcripts``; when given, ``labels`` of the output masks everything but the answer.
        answer_prefix: text the assistant turn starts with at inference (e.g. "| ASR:").
        prompt_index: a fixed prompt of the bank (default: random, seeded by ``seed``).
        audio_token_counts: instead of ``audio``, the number of audio tokens of each clip (when the
            model gets precomputed encoder outputs).
        return_asr_mask: also return ``asr_token_mask`` (1 on answer tokens of the transcript), for
            recipes that weight the ASR part of joint answers.
        """
        rng = random.Random(seed)
        clips = None
        if audio is not None:
            clips = list(audio) if isinstance(audio, (list, tuple)) else [audio]
        texts = [text] if isinstance(text, str) else (list(text) if text is not None else None)
        n = (
            len(clips)
            if clips is not None
            else (len(texts) if texts is not None else len(audio_token_counts or []))
        )
        if n == 0:
            raise ValueError("give audio (or audio_token_counts), text, or both")
        if texts is not None and len(texts) != n:
            raise ValueError(f"got {n} audio clips but {len(texts)} texts; give one text per clip")
        answers_label = [labels] if isinstance(labels, str) else labels
        answers_text = [transcripts] if isinstance(transcripts, str) else transcripts
        training = answers_label is not None or answers_text is not None
        if task != "asr" and answers_label is not None:
            unknown = sorted({x for x in answers_label if x not in self.labels})
            if unknown:
                raise ValueError(f"labels {unknown} are not in the processor's label set {self.labels}")

        out: dict = {}
        counts = list(audio_token_counts) if audio_token_counts is not None else [None] * n
        has_audio = clips is not None or audio_token_counts is not None
        if clips is not None:
            features = self.feature_extractor(clips, sampling_rate=sampling_rate, return_tensors="np")
            name = "input_values" if "input_values" in features else "input_features"
            out[name] = features[name]
            out["audio_attention_mask"] = features["attention_mask"]
            counts = [self.num_audio_tokens(int(m.sum())) for m in features["attention_mask"]]

        sequences, label_masks, asr_masks = [], [], []
        for i in range(n):
            instruction = self.instruction(task, rng, prompt_index, shuffle_labels)
            transcript_in_prompt = texts[i] if texts is not None else None
            prompt = self.render(instruction, has_audio, transcript_in_prompt)
            if answer_prefix:
                prompt += answer_prefix
            ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            answer_ids, asr_part = [], []
            if training:
                transcript = answers_text[i] if answers_text is not None else None
                label = answers_label[i] if answers_label is not None else None
                answer_ids, asr_part = self._answer_ids(task, transcript, label)
            if has_audio:
                ids = expand_audio_placeholders(ids, [counts[i]], self.audio_token_id)
            sequences.append(ids + answer_ids)
            label_masks.append([False] * len(ids) + [True] * len(answer_ids))
            asr_masks.append([False] * len(ids) + asr_part)

        # left padding: the last position is the next-token position of every row
        width = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id
        input_ids = np.full((n, width), pad, dtype=np.int64)
        attention = np.zeros((n, width), dtype=np.int64)
        for i, s in enumerate(sequences):
            input_ids[i, width - len(s) :] = s
            attention[i, width - len(s) :] = 1
        out["input_ids"], out["attention_mask"] = input_ids, attention
        if training:
            target = np.full((n, width), -100, dtype=np.int64)
            for i, (s, m) in enumerate(zip(sequences, label_masks)):
                target[i, width - len(s) :] = np.where(m, s, -100)
            out["labels"] = target
            if return_asr_mask:
                asr = np.zeros((n, width), dtype=np.int64)
                for i, (s, m) in enumerate(zip(sequences, asr_masks)):
                    asr[i, width - len(s) :] = m
                out["asr_token_mask"] = asr
        return BatchFeature(out, tensor_type=return_tensors)

    def _answer_ids(
        self, task: str, transcript: str | None, label: str | None
    ) -> tuple[list[int], list[bool]]:
        """Answer tokens and which of them belong to the transcript (weighted by the ASR loss weight).

        The joint answer is tokenised as "| ASR: <t> | Emotion:" then " <label><end>", so a label's
        tokens are the same as those the classifier scores after "| Emotion:".
        """

        def encode(text: str) -> list[int]:
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]

        end = self._end_of_turn()
        if task == "asr":
            ids = encode((transcript or "") + end)
            return ids, [True] * len(ids)
        if task == "ser":
            ids = encode((label or "") + end)
            return ids, [False] * len(ids)
        asr_ids = encode(joint_answer(transcript or ""))
        label_ids = encode(f" {label}{end}" if label is not None else end)
        return asr_ids + label_ids, [True] * len(asr_ids) + [False] * len(label_ids)

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    def label_token_ids(self, after: str = "") -> list[list[int]]:
        """Token ids of each label as an answer on its own, or (``after`` non-empty, e.g. "| Emotion:")
        as written after that prefix, i.e. with a leading space (see ``_answer_ids``)."""
        ids = [
            self.tokenizer(f" {label}" if after else label, add_special_tokens=False)["input_ids"]
            for label in self.labels
        ]
        if len({tuple(i) for i in ids}) != len(ids):
            raise ValueError(f"two labels tokenise identically: {dict(zip(self.labels, ids))}; rename one")
        return ids


__all__ = ["AudioLLMProcessor", "joint_answer"]
