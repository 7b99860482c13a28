"""AudioLLMProcessor: feature extractor + tokenizer + prompt builder for serhub's audio-LLMs.

It renders chat prompts with the LLM's chat template: a natural-language cue, one audio placeholder
per clip (expanded to the clip's number of audio tokens), and an instruction drawn from a bank of
prompts per task with the emotion list shuffled per sample (EmoSLLM, sec. 3.3). For training it
appends the answer and returns ``labels`` with everything but the answer masked to -100.

Tasks: "asr" (answer: the transcript), "ser" (answer: the label), "asr+ser" (answer:
"| ASR: <transcript> | Emotion: <label>"). Text-only prompts carry a transcript and no audio. The
format itself (prompt banks, answers, audio-token counts, padding) is ``prompting_audio_llm``'s.
"""

from __future__ import annotations

import random

import numpy as np
from transformers import BatchFeature, ProcessorMixin

from .connectors import connector_class
from .prompting_audio_llm import (
    ASR_PREFIX,
    AUDIO_TOKEN,
    CUE,
    DEFAULT_PROMPTS,
    DESCRIPTORS_PREFIX,
    EMOTION_PREFIX,
    TASKS,
    TRANSCRIPT_STOP,
    answer_segments,
    encoder_output_frames,
    expand_audio_placeholders,
    joint_answer,
    label_text,
    left_pad,
    user_message,
)
from .prompting_audio_llm import instruction as instruction_text


class AudioLLMProcessor(ProcessorMixin):
    r"""Args:
    feature_extractor: the encoder's feature extractor (serhub's ``SpeechEmotionFeatureExtractor``).
    tokenizer: the LLM's tokenizer, with a chat template; the audio placeholder token is added.
    labels: the emotion label set used in the prompts.
    num_queries / stack_factor / connector / encoder_convs: how many audio tokens a clip becomes.
    prompts: ``{task: [templates]}`` with ``{labels}`` fields; default: 20 per task.
    system_prompt: the system turn of every chat. None (the default, and every processor saved without
        it): the chat template's own, e.g. SmolLM2's "You are a helpful AI assistant named SmolLM, ..."
        (16 tokens on every prompt); "" an empty system turn; any text, that text.
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
        system_prompt: str | None = None,
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
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise ValueError(
                f'system_prompt is the text of the system turn (a string, "" for an empty one) or None for the '
                f"chat template's own; found {type(system_prompt).__name__} {system_prompt!r}"
            )
        self.system_prompt = system_prompt
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
        """Audio tokens of a clip with ``feature_frames`` feature-extractor frames (or samples), all groups."""
        return sum(self.audio_token_counts(encoder_output_frames(feature_frames, self.encoder_convs)))

    def num_audio_tokens_from_frames(self, encoder_frames: int) -> int:
        """Audio tokens made from ``encoder_frames`` encoder output frames, all groups."""
        return sum(self.audio_token_counts(encoder_frames))

    def audio_token_counts(self, encoder_frames: int) -> tuple[int, ...]:
        """Placeholders of each of the connector's groups for ``encoder_frames`` encoder output frames."""
        return connector_class(self.connector).token_counts(
            encoder_frames, self.num_queries, self.stack_factor
        )

    # ------------------------------------------------------------------ prompts
    def instruction(
        self, task: str, rng: random.Random, prompt_index: int | None = None, shuffle_labels: bool = True
    ) -> str:
        return instruction_text(self.prompts, self.labels, task, rng, prompt_index, shuffle_labels)

    def render(
        self,
        instruction: str,
        has_audio: bool,
        transcript_in_prompt: str | None = None,
        answer: str | None = None,
    ) -> str:
        """One chat as text: the audio placeholder appears once (expanded later, in token space)."""
        messages = user_message(
            instruction,
            has_audio,
            transcript_in_prompt,
            self.cue,
            self.audio_token,
            connector_class(self.connector).groups,
        )
        if self.system_prompt is not None:
            messages = [{"role": "system", "content": self.system_prompt}, *messages]
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
        descriptors: list[str] | str | None = None,
        sampling_rate: int | None = None,
        return_tensors: str | None = "pt",
        prompt_index: int | None = None,
        shuffle_labels: bool = True,
        seed: int | None = None,
        answer_prefix: list[str] | str | None = None,
        return_asr_mask: bool = False,
        audio_token_counts: list[int] | None = None,
        **kwargs,
    ) -> BatchFeature:
        r"""Build model inputs.

        audio: one clip or a list (16 kHz arrays); None for text-only prompts.
        text: transcripts to put in the prompt (text-only or audio+transcript input).
        task: "ser" | "asr" | "asr+ser" | "asr+des+ser".
        labels / transcripts / descriptors: the answers, for training: ``labels`` (emotion names),
            ``transcripts`` and (task "asr+des+ser") ``descriptors``; when given, ``labels`` of the
            output masks everything but the answer.
        answer_prefix: text the assistant turn starts with at inference (e.g. "| ASR:"); one for all
            clips or one per clip.
        prompt_index: a fixed prompt of the bank (default: random, seeded by ``seed``).
        audio_token_counts: instead of ``audio``, the audio tokens of each clip (when the model gets
            precomputed encoder outputs): one count per group of the connector
            (``audio_token_counts_from``), or one number that every group takes.
        return_asr_mask: also return ``asr_token_mask`` (1 on answer tokens of the transcript), for
            recipes that weight the ASR part of joint answers.
        """
        rng = random.Random(seed)
        clips, texts, n = self._clips_and_texts(audio, text, audio_token_counts)
        answer_labels, answer_transcripts, answer_descriptors = (
            [a] if isinstance(a, str) else a for a in (labels, transcripts, descriptors)
        )
        training = answer_labels is not None or answer_transcripts is not None
        self._check_labels(task, answer_labels)

        out: dict = {}
        counts = list(audio_token_counts) if audio_token_counts is not None else [None] * n
        has_audio = clips is not None or audio_token_counts is not None
        if clips is not None:
            out, counts = self._audio_features(clips, sampling_rate)

        rows = []
        for i in range(n):
            prefix = answer_prefix[i] if isinstance(answer_prefix, (list, tuple)) else answer_prefix
            ids = self._prompt_ids(task, rng, prompt_index, shuffle_labels, has_audio, _nth(texts, i), prefix)
            answer_ids, asr_part = [], []
            if training:
                answer_ids, asr_part = self._answer_ids(
                    task, _nth(answer_transcripts, i), _nth(answer_labels, i), _nth(answer_descriptors, i)
                )
            if has_audio:  # one placeholder per audio-token group, each with the clip's count for it
                ids = expand_audio_placeholders(ids, self._group_counts(counts[i]), self.audio_token_id)
            rows.append((ids, answer_ids, asr_part))
        out.update(self._padded(rows, training, return_asr_mask))
        return BatchFeature(out, tensor_type=return_tensors)

    @staticmethod
    def _clips_and_texts(audio, text, audio_token_counts) -> tuple[list | None, list[str] | None, int]:
        """The clips and the prompts' texts as lists, and the number of rows they agree on."""
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
        return clips, texts, n

    def _audio_features(self, clips, sampling_rate: int | None) -> tuple[dict, list]:
        """The encoder's input features of the clips (with their attention mask; and ``prosody_values``
        when the feature extractor measures them, for a ``speaker_prosody`` model) and the audio-token
        counts of each clip, from its unpadded length."""
        features = self.feature_extractor(clips, sampling_rate=sampling_rate, return_tensors="np")
        name = "input_values" if "input_values" in features else "input_features"
        counts = [
            self.audio_token_counts(encoder_output_frames(int(m.sum()), self.encoder_convs))
            for m in features["attention_mask"]
        ]
        out = {name: features[name], "audio_attention_mask": features["attention_mask"]}
        if "prosody_values" in features:
            out["prosody_values"] = features["prosody_values"]
        return out, counts

    def _prompt_ids(
        self,
        task: str,
        rng: random.Random,
        prompt_index: int | None,
        shuffle_labels: bool,
        has_audio: bool,
        text: str | None,
        prefix: str | None,
    ) -> list[int]:
        """One row's prompt tokens, ending with the answer prefix; its audio placeholder not expanded yet
        (the instruction draws from ``rng``, so rows are built in order)."""
        instruction = self.instruction(task, rng, prompt_index, shuffle_labels)
        prompt = self.render(instruction, has_audio, text)
        return self.tokenizer(prompt + (prefix or ""), add_special_tokens=False)["input_ids"]

    def _padded(self, rows, training: bool, return_asr_mask: bool) -> dict:
        """The rows (prompt ids, answer ids, which answer ids are the transcript's) left-padded: the
        last position is the next-token position of every row. With answers, ``labels`` keeps only
        the answer tokens (the rest -100)."""
        sequences = [ids + answer_ids for ids, answer_ids, _ in rows]
        out = {}
        out["input_ids"], out["attention_mask"] = left_pad(sequences, self.tokenizer.pad_token_id)
        if training:
            label_masks = [[False] * len(ids) + [True] * len(answer_ids) for ids, answer_ids, _ in rows]
            out["labels"] = left_pad([np.where(m, q, -100) for q, m in zip(sequences, label_masks)], -100)[0]
            if return_asr_mask:
                out["asr_token_mask"] = left_pad([[False] * len(ids) + asr for ids, _, asr in rows], 0)[0]
        return out

    def _group_counts(self, count) -> list[int]:
        groups = len(connector_class(self.connector).groups)
        counts = list(count) if isinstance(count, (tuple, list)) else [count] * groups
        if len(counts) != groups:
            raise ValueError(
                f"the {self.connector} connector fills {groups} audio-token groups, got {len(counts)} counts ({counts})"
            )
        return counts

    def _check_labels(self, task: str, labels: list[str] | None) -> None:
        if task != "asr" and labels is not None:
            unknown = sorted({x for x in labels if x not in self.labels})
            if unknown:
                raise ValueError(f"labels {unknown} are not in the processor's label set {self.labels}")

    def _answer_ids(
        self, task: str, transcript: str | None, label: str | None, descriptors: str | None = None
    ) -> tuple[list[int], list[bool]]:
        """Answer tokens and which of them belong to the transcript (weighted by the ASR loss weight)."""
        ids, is_transcript = [], []
        segments = answer_segments(task, transcript, label, self._end_of_turn(), descriptors)
        for text, transcript_part in segments:
            piece = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            ids += piece
            is_transcript += [transcript_part] * len(piece)
        return ids, is_transcript

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    def label_token_ids(self, after_prefix: bool = False) -> list[list[int]]:
        """Token ids of each label as an answer on its own, or (``after_prefix``) as written after
        "| Emotion:" in a joint answer, i.e. with a leading space."""
        ids = [
            self.tokenizer(label_text(label, after_prefix), add_special_tokens=False)["input_ids"]
            for label in self.labels
        ]
        if len({tuple(i) for i in ids}) != len(ids):
            raise ValueError(f"two labels tokenise identically: {dict(zip(self.labels, ids))}; rename one")
        return ids

    def prompt_config(self) -> dict:
        """The token-level prompt a model needs without a tokenizer (``pipeline`` use): the config's
        ``prompt`` dict. The classification prompts use the bank's first instruction, labels in order."""
        tokenize = lambda text: self.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
        rng = random.Random(0)
        ser = self.render(self.instruction("ser", rng, prompt_index=0, shuffle_labels=False), has_audio=True)
        joint = self.render(
            self.instruction("asr+ser", rng, prompt_index=0, shuffle_labels=False), has_audio=True
        )
        eos = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        described = {}
        if "asr+des+ser" in self.prompts:
            text = self.render(
                self.instruction("asr+des+ser", rng, prompt_index=0, shuffle_labels=False), has_audio=True
            )
            # descriptor_conditioned: write "<t> | Descriptors: <d> | Emotion:", then score the labels
            described = {
                "described_input_ids": tokenize(text + ASR_PREFIX),
                "descriptors_prefix_ids": tokenize(" " + DESCRIPTORS_PREFIX),
            }
        return {
            **described,
            "audio_token_id": self.audio_token_id,
            "label_token_ids": self.label_token_ids(),
            "emotion_label_token_ids": self.label_token_ids(after_prefix=True),
            "input_ids": tokenize(ser),
            "joint_input_ids": tokenize(joint + ASR_PREFIX),
            "emotion_prefix_ids": tokenize(" " + EMOTION_PREFIX),
            "transcript_stop_ids": tokenize(TRANSCRIPT_STOP)[:1] + eos,
        }


def _nth(values, i: int):
    """Row ``i`` of a per-row list, or None where the list was not given."""
    return values[i] if values is not None else None


__all__ = ["AudioLLMProcessor", "TASKS", "CUE", "DEFAULT_PROMPTS", "joint_answer"]
