"""The audio-LLM recipes' model arguments (``AudioLLMArguments``: encoder, connector, LLM and LoRA),
shared by emosllm, whisper_llm and descriptors; importable from ``audio_llm_common`` as before."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AudioLLMArguments:
    """The model: encoder, connector, LLM and LoRA."""

    audio_model_name_or_path: str = field(
        default="offline:whisper-tiny.en",
        metadata={"help": "speech encoder (Hub id, folder, offline:<name>)"},
    )
    text_model_name_or_path: str = field(
        default="offline:smollm2-135m-instruct", metadata={"help": "causal LLM with a chat template"}
    )
    system_prompt: str | None = field(
        default=None,
        metadata={
            "help": "the system turn of every prompt: unset for the chat template's own (SmolLM2's names the "
            'assistant: 16 tokens per prompt), "" for an empty one, or a text'
        },
    )
    connector: str = field(
        default="query_pooling",
        metadata={"help": "query_pooling | linear | vae_ib | ctc_path (modeling/connectors.py)"},
    )
    num_queries: int = 32
    mapper_layers: int = 2
    mapper_hidden_size: int | None = None
    mapper_heads: int = 8
    mapper_frame_norm: str = field(
        default="global", metadata={"help": "query_pooling frame normalisation: global | layer | none"}
    )
    projector_frame_norm: str = field(
        default="none",
        metadata={
            "help": "linear projector frame normalisation: global (training-set statistics) | layer | none"
        },
    )
    mapper_positions: bool = field(default=True, metadata={"help": "sinusoidal time positions on the frames"})
    mapper_output_norm: bool = field(
        default=True,
        metadata={"help": "RMS-normalise the audio tokens with a gain starting at the LLM's embedding RMS"},
    )
    stack_factor: int = 4
    init_connector: str | None = field(
        default=None,
        metadata={
            "help": "start the connector from one trained before: an audio-LLM model or stage folder with the same "
            "connector, encoder and LLM (e.g. outputs/emosllm/phase1: aligned on ASR) or a phase0_ctc folder "
            "(recipes/connector_init.py); default: a fresh connector"
        },
    )
    trim_silence_db: float | None = field(
        default=None,
        metadata={
            "help": "cut each clip's leading/trailing audio quieter than this many dB below its loudest frame, "
            "in training and in the saved model's feature extractor (fewer audio tokens, and no silence "
            "to learn from), e.g. 35; default: clips as given"
        },
    )
    trim_noise_margin_db: float | None = field(
        default=None,
        metadata={
            "help": "with --trim_silence_db: a frame is speech only if it is also this many dB above the clip's "
            "noise floor, so a noisy recording's pauses are cut too (e.g. 10); default: the loudest frame alone"
        },
    )
    vib_latent_size: int = field(
        default=256, metadata={"help": "vae_ib: latent size per frame of each branch"}
    )
    vib_initial_log_var: float = field(
        default=-5.0, metadata={"help": "vae_ib: the posteriors' initial log sigma^2 (0: sigma 1)"}
    )
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    loss_type: str = field(
        default="weighted_ce",
        metadata={
            "help": "the loss over the labels' scores (modeling/losses.py), weighted by the training split's counts"
        },
    )
    max_transcript_tokens: int = 48
    max_descriptor_tokens: int = 24
    speaker_prosody: bool = field(
        default=False,
        metadata={
            "help": "add label scores from ten measured prosody numbers per clip relative to its speaker's "
            "reference (in training each speaker's first 2 clips, neutral first, --speaker_column; at inference "
            "model.enroll_speaker, serhub evaluate/predict --enroll...) to the LLM's label scores"
        },
    )
    prosody_hidden_size: int = 32
    prosody_reference_dropout: float = field(
        default=0.0,
        metadata={
            "help": "--speaker_prosody: the share of training clips shown no speaker reference, so that the model "
            "also scores a speaker it was not enrolled on (then reading no reference, not the training voices' "
            "average)"
        },
    )
    prosody_learning_rate: float | None = field(
        default=1e-2,
        metadata={
            "help": "--speaker_prosody: the prosody head's own learning rate (unset: --learning_rate); at the "
            "projector's 1e-3 it barely moved in one epoch (README: speaker prosody)"
        },
    )

    def __post_init__(self):
        from .connector_init import check_init_connector

        check_init_connector(self)


__all__ = ["AudioLLMArguments"]
