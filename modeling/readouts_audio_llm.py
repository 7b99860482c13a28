"""How the audio-LLM classifier reads its answer (``AudioLLMForAudioClassification``'s modes): the
config's tokenised prompt expanded for ``pipeline`` use, and the written transcript (and descriptors)
that the "transcript_conditioned" and "descriptor_conditioned" modes append before scoring the labels."""

from __future__ import annotations

import torch
from transformers import StoppingCriteria

from .configuration_audio_llm import encoder_convs
from .prompting_audio_llm import encoder_output_frames, expand_audio_placeholders, left_pad


def prompt_from_config(
    config,
    prompt_ids: list[int],
    audio,
    audio_attention_mask,
    encoder_hidden_states,
    encoder_attention_mask,
    device,
):
    """input_ids/attention_mask from the config's tokenised prompt, one per clip (left-padded)."""
    if not prompt_ids:
        raise ValueError("this config has no prompt input_ids; pass input_ids from AudioLLMProcessor")
    if encoder_hidden_states is not None:
        mask = (
            encoder_attention_mask
            if encoder_attention_mask is not None
            else torch.ones(encoder_hidden_states.shape[:2], dtype=torch.bool)
        )
        frames = mask.sum(-1).tolist()
    else:
        feature_mask = (
            audio_attention_mask
            if audio_attention_mask is not None
            else torch.ones(audio.shape[:2], dtype=torch.bool)
        )
        frames = [
            encoder_output_frames(int(n), encoder_convs(config.audio_config))
            for n in feature_mask.sum(-1).tolist()
        ]
    rows = [
        expand_audio_placeholders(
            list(prompt_ids),
            list(config.audio_token_counts(f)),
            config.audio_token_id,
        )
        for f in frames
    ]
    return _as_tensors(left_pad(rows, config.pad_token_id or 0), device)


def append_written_answer(model, embeds, attention_mask, with_descriptors: bool = False):
    """Greedily write the transcript, then append " | Emotion:" (EmoSLLM's best inference). With
    descriptors: write "<transcript> | Descriptors: <descriptors> | Emotion:" and cut there."""
    prompt = model.config.prompt
    emotion = list(prompt["emotion_prefix_ids"])
    if with_descriptors:
        if "descriptors_prefix_ids" not in prompt:
            raise ValueError(
                "descriptor_conditioned needs a model trained to write descriptors (a 'vae_ib' model "
                "from recipes/descriptors.py); this config's prompt has no descriptor format"
            )
        stopping = {
            "stopping_criteria": [_EndsWith(emotion)],
            "eos_token_id": prompt["transcript_stop_ids"][1:],
        }
        budget = model.config.max_transcript_tokens + model.config.max_descriptor_tokens
    else:
        stopping = {"eos_token_id": prompt["transcript_stop_ids"]}
        budget = model.config.max_transcript_tokens
    generated = model.language_model.generate(
        inputs_embeds=embeds,
        attention_mask=attention_mask,
        max_new_tokens=budget,
        do_sample=False,
        pad_token_id=model.config.pad_token_id or 0,
        suppress_tokens=[model.config.audio_token_id],
        **stopping,
    )
    stop, eos = set(prompt["transcript_stop_ids"]), set(prompt["transcript_stop_ids"][1:])
    rows = []
    for seq in generated.tolist():
        if with_descriptors:  # up to the first " | Emotion:" (written, or appended when missing)
            cut = _find(seq, emotion)
            cut = next((i for i, t in enumerate(seq) if t in eos), len(seq)) if cut < 0 else cut
        else:
            cut = next((i for i, t in enumerate(seq) if t in stop), len(seq))
        rows.append(seq[:cut] + emotion)
    ids, mask = _as_tensors(left_pad(rows, model.config.pad_token_id or 0), embeds.device)
    new = model.get_input_embeddings()(ids)
    full_mask = torch.cat([attention_mask, mask], 1)
    # right-aligned rows: the appended tokens of a row follow its prompt without a gap in positions
    full, full_mask = _compact_left(torch.cat([embeds, new], 1), full_mask)
    return full, full_mask, (full_mask.long().cumsum(-1) - 1).clamp_min(0)


def _find(seq: list[int], part: list[int]) -> int:
    """Index of the first occurrence of ``part`` in ``seq``, or -1."""
    n = len(part)
    return next((i for i in range(len(seq) - n + 1) if seq[i : i + n] == part), -1)


class _EndsWith(StoppingCriteria):
    """Stop a row once its generated tokens end with ``tail`` (e.g. " | Emotion:")."""

    def __init__(self, tail: list[int]):
        self.tail = torch.tensor(tail)

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        n = len(self.tail)
        if input_ids.shape[1] < n:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        return (input_ids[:, -n:] == self.tail.to(input_ids.device)).all(-1)


def _as_tensors(arrays, device) -> tuple[torch.Tensor, ...]:
    return tuple(torch.as_tensor(a, device=device) for a in arrays)


def _compact_left(embeds: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's valid positions to the right end (left padding), keeping their order."""
    order = torch.argsort(mask.long(), dim=1, stable=True)  # invalid (0) first, valid (1) after
    return embeds.gather(1, order[..., None].expand_as(embeds)), mask.gather(1, order)


__all__ = ["append_written_answer", "prompt_from_config"]
