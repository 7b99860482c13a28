"""Emotion from the transcript with a causal LLM, as a transformers text classifier.

    transcript tokens -> [chat prefix; transcript; chat suffix] -> LLM (LoRA) -> label log-likelihoods
                                                                         or attentive pooling -> head

- ``label_logits``: the log-likelihood of each label as the assistant's first words (THAU-UPM's text
  model after SFT, ABHINAYA T1 zero-shot); the scoring is the audio-LLM family's (``layers.score_labels``).
- ``pooling_head``: attentive statistics pooling over the last hidden layer and a linear head (ABHINAYA T2).

The prompt lives in the config as token ids, so ``pipeline("text-classification")`` only tokenizes the
transcript; the model puts it into the prompt, row by row, and left-pads.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from .configuration_text_llm import TextLLMConfig
from .layers import AttentiveStatisticsPooling, score_labels
from .losses import build_classification_loss
from .prompting_audio_llm import label_text, left_pad

INSTRUCTION = (
    "Here is the transcript of an utterance. What emotion does the speaker express? "
    "Answer with one word from: {labels}."
)
_PLACEHOLDER = "\u2063TRANSCRIPT\u2063"  # never in real text: marks where the transcript goes


def text_prompt(tokenizer, labels: list[str], instruction: str = INSTRUCTION) -> dict:
    """The config's ``prompt`` dict from a tokenizer with a chat template: the chat split around the
    transcript (which goes on its own line, so its tokens do not merge with the prompt's)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template: use an instruction-tuned LLM (or set one)")
    content = instruction.format(labels=", ".join(labels)) + "\n" + _PLACEHOLDER
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    before, after = text.split(_PLACEHOLDER)
    encode = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    probe = tokenizer("x")["input_ids"]
    strip = [t for t in probe if t not in encode("x")]
    return {
        "prefix_ids": encode(before),
        "suffix_ids": encode(after),
        "label_token_ids": [encode(label_text(label, after_prefix=False)) for label in labels],
        "strip_ids": strip,
        "end_ids": [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [],
    }


class TextLLMForSequenceClassification(PreTrainedModel):
    config_class = TextLLMConfig
    base_model_prefix = "text_llm"
    # forward returns the mean loss of the batch it is given and ignores num_items_in_batch: the Trainer
    # must divide it by the gradient-accumulation steps (it skips that for models said to accept loss kwargs)
    accepts_loss_kwargs = False
    main_input_name = "input_ids"
    _supports_sdpa = True

    def __init__(self, config: TextLLMConfig):
        super().__init__(config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        if config.classification_mode == "pooling_head":
            hidden = config.text_config.hidden_size
            self.pooling = AttentiveStatisticsPooling(hidden, config.pooling_attention_size)
            self.classifier = nn.Linear(2 * hidden, len(config.labels))
        self.post_init()
        if config.has_lora:
            from .assembly_audio_llm import inject_lora

            inject_lora(self)

    @torch.no_grad()
    def _init_weights(self, module):
        # the head (the LLM comes pretrained, through from_llm or from_pretrained)
        if isinstance(module, nn.Linear):
            module.weight.normal_(0.0, 0.02)
            if module.bias is not None:
                module.bias.zero_()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    # ------------------------------------------------------------------------ building
    @classmethod
    def from_llm(
        cls,
        text_model,
        labels: list[str],
        classification_mode: str = "label_logits",
        instruction: str = INSTRUCTION,
        model_kwargs: dict | None = None,
        **config_kwargs,
    ):
        """A classifier around a pretrained causal LLM (folder or Hub id): ``(model, tokenizer)``.
        ``model_kwargs`` go to ``AutoModelForCausalLM.from_pretrained`` (``dtype``, ``device_map``
        for a large model on GPUs); the LLM is used as loaded, never copied."""
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(text_model))
        llm = AutoModelForCausalLM.from_pretrained(str(text_model), **(model_kwargs or {}))
        config = TextLLMConfig(
            text_config=llm.config,
            labels=labels,
            prompt=text_prompt(tokenizer, labels, instruction),
            classification_mode=classification_mode,
            text_model_name_or_path=str(text_model),
            pad_token_id=tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else tokenizer.eos_token_id,
            **config_kwargs,
        )
        with torch.device("meta"):  # no second copy of the LLM: the loaded one is put in place
            model = cls(config)
        model.language_model = llm
        for name in ("pooling", "classifier"):
            if hasattr(model, name):
                part = getattr(model, name).to_empty(device=llm.device).to(llm.dtype)
                part.apply(model._init_weights)
        return model.eval(), tokenizer

    def enable_lora(self):
        from .assembly_audio_llm import inject_lora

        inject_lora(self)
        self.config.has_lora = True
        return self

    def merge_and_unload_lora(self):
        from .assembly_audio_llm import merge_lora

        merge_lora(self)
        self.config.has_lora = False
        return self

    # ------------------------------------------------------------------------- inputs
    def prompt_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """Each row's transcript tokens (padding and tokenizer-added specials removed, cut to
        ``max_text_tokens``) inside the prompt; left-padded ids, mask and positions."""
        p = self.config.prompt
        if not p.get("prefix_ids"):
            raise ValueError(
                "this config has no prompt: build the model with TextLLMForSequenceClassification.from_llm"
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        strip = set(p.get("strip_ids", []))
        rows = []
        for ids, mask in zip(input_ids.tolist(), attention_mask.tolist()):
            text = [t for t, m in zip(ids, mask) if m and t not in strip][: self.config.max_text_tokens]
            rows.append(list(p["prefix_ids"]) + text + list(p["suffix_ids"]))
        ids, mask = left_pad(rows, self.config.pad_token_id or 0)
        ids = torch.as_tensor(ids, device=input_ids.device)
        mask = torch.as_tensor(mask, device=input_ids.device)
        return ids, mask, (mask.long().cumsum(-1) - 1).clamp_min(0)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        calibrated: bool = True,
        **kwargs,
    ) -> SequenceClassifierOutput:
        """input_ids: the transcripts as the tokenizer gives them (any padding side). calibrated: divide
        the logits by ``config.calibration_temperature`` (what the pipeline's scores come from);
        ``False``: the logits as trained. The loss is on the logits as trained."""
        ids, mask, positions = self.prompt_inputs(input_ids, attention_mask)
        embeds = self.get_input_embeddings()(ids)
        if self.config.classification_mode == "pooling_head":
            hidden = self.language_model.model(
                inputs_embeds=embeds, attention_mask=mask, position_ids=positions
            ).last_hidden_state
            logits = self.classifier(self.pooling(hidden, mask.bool()))
        else:
            logits = score_labels(
                self.language_model, embeds, mask, positions, self.config.prompt["label_token_ids"]
            )
        loss = None
        if labels is not None:
            c = self.config
            loss = build_classification_loss(
                c.loss_type, c.class_counts, focal_gamma=c.focal_gamma, vs_gamma=c.vs_gamma, vs_tau=c.vs_tau
            ).to(logits.device)(logits.float(), labels.long())
        if calibrated and self.config.calibration_temperature != 1.0:
            logits = logits / self.config.calibration_temperature
        return SequenceClassifierOutput(loss=loss, logits=logits)


__all__ = ["INSTRUCTION", "TextLLMForSequenceClassification", "text_prompt"]
