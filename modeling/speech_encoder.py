"""One wrapper over every supported HF speech encoder, shared by the classifier and the audio-LLMs."""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import AutoModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from .encoder_family import encoder_family


class SpeechEncoder(nn.Module):
    """Runs any supported HF speech encoder and returns all hidden layers and a frame mask.

    Returns (hidden_states (B, L+1, T', D), mask (B, T') bool). Inputs longer than
    ``chunk_length_s`` are encoded chunk by chunk and concatenated along time.
    """

    def __init__(self, audio_config, chunk_length_s: float = 30.0):
        super().__init__()
        family = encoder_family(audio_config)
        self.is_whisper = family.is_whisper
        self.model = WhisperEncoder(audio_config) if self.is_whisper else AutoModel.from_config(audio_config)
        self.chunk = family.max_chunk(chunk_length_s)  # input frames (mel frames or samples) per pass
        self.padding_leaks = family.padding_leaks  # such encoders encode a ragged batch clip by clip

    # --- Whisper: conv stem + sliced positions + masked self-attention ------------------------------
    def _whisper(self, features: torch.Tensor, mask: torch.Tensor):
        enc = self.model
        features = features.transpose(1, 2)  # B, T, n_mels -> B, n_mels, T
        m = mask[:, None, :].to(features.dtype)  # B, 1, T
        # Zero padded positions between the convolutions, so a padded clip sees exactly the zeros of
        # the convolutions' own padding, as it would alone.
        x = nn.functional.gelu(enc.conv1(features * m)) * m
        x = nn.functional.gelu(enc.conv2(x))  # B, D, ceil(T/2)
        frame_mask = mask[:, ::2]  # B, T'
        x = x.permute(0, 2, 1) * frame_mask[..., None].to(x.dtype)
        if x.shape[1] > enc.embed_positions.num_embeddings:
            raise ValueError(
                f"Whisper encodes at most {enc.embed_positions.num_embeddings * 2} mel frames per chunk, got {features.shape[-1]}"
            )
        x = x + enc.embed_positions.weight[: x.shape[1]]
        bias = torch.zeros(frame_mask.shape, dtype=x.dtype, device=x.device)
        bias = bias.masked_fill(~frame_mask, torch.finfo(x.dtype).min)[:, None, None, :]  # B, 1, 1, T'
        states = [x]
        for layer in enc.layers:
            out = layer(x, bias)
            x = out[0] if isinstance(out, tuple) else out
            states.append(x)
        states[-1] = enc.layer_norm(x)
        return torch.stack(states, dim=1), frame_mask

    def _ssl(self, values: torch.Tensor, mask: torch.Tensor):
        if self.padding_leaks and values.shape[0] > 1 and not mask.all():
            outputs = [
                self._ssl(v[None, : int(m.sum())], m[None, : int(m.sum())]) for v, m in zip(values, mask)
            ]
            frames = max(o[0].shape[2] for o in outputs)
            states = torch.stack(
                [nn.functional.pad(o[0][0], (0, 0, 0, frames - o[0].shape[2])) for o in outputs]
            )
            frame_mask = torch.stack(
                [nn.functional.pad(o[1][0], (0, frames - o[1].shape[1])) for o in outputs]
            )
            return states, frame_mask
        out = self.model(values, attention_mask=mask.long(), output_hidden_states=True)
        frame_mask = self.model._get_feature_vector_attention_mask(
            out.last_hidden_state.shape[1], mask.long()
        ).bool()
        return torch.stack(out.hidden_states, dim=1), frame_mask

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None):
        if mask is None:
            mask = torch.ones(inputs.shape[:2], dtype=torch.bool, device=inputs.device)
        mask = mask.bool()
        encode = self._whisper if self.is_whisper else self._ssl
        length = inputs.shape[1]
        if length <= self.chunk:
            return encode(inputs, mask)
        # Long input: encode fixed-size chunks as one batch, then put them back in time order.
        n = math.ceil(length / self.chunk)
        pad = n * self.chunk - length
        batch = inputs.shape[0]
        # time is dim 1: (B, N) samples or (B, T, n_mels) frames
        inputs = nn.functional.pad(inputs, (0, 0) * (inputs.ndim - 2) + (0, pad))
        mask = nn.functional.pad(mask, (0, pad))
        chunks = inputs.reshape(batch * n, self.chunk, *inputs.shape[2:])
        chunk_mask = mask.reshape(batch * n, self.chunk)
        # An all-padding chunk still needs one "valid" position to keep softmaxes finite; it is
        # dropped again from the returned mask.
        empty = ~chunk_mask.any(-1)
        chunk_mask_safe = chunk_mask.clone()
        chunk_mask_safe[empty, 0] = True
        states, frame_mask = encode(chunks, chunk_mask_safe)
        frame_mask = frame_mask & ~empty[:, None]
        L, T, D = states.shape[1], states.shape[2], states.shape[3]
        states = states.reshape(batch, n, L, T, D).movedim(1, 2).reshape(batch, L, n * T, D)
        return states, frame_mask.reshape(batch, n * T)

    def freeze(
        self, encoder: bool = True, feature_encoder: bool = True, num_trainable_layers: int | None = None
    ) -> None:
        """Freeze everything, or the conv stem only, or all but the top ``num_trainable_layers`` layers."""
        if encoder:
            self.model.requires_grad_(False)
            return
        if feature_encoder:
            if self.is_whisper:
                for module in (self.model.conv1, self.model.conv2):
                    module.requires_grad_(False)
            else:
                self.model.freeze_feature_encoder()
        if num_trainable_layers is not None:
            layers = self.model.layers if self.is_whisper else self.model.encoder.layers
            keep = num_trainable_layers
            if not 0 <= keep <= len(layers):
                raise ValueError(f"num_trainable_encoder_layers must be in [0, {len(layers)}], got {keep}")
            self.model.requires_grad_(False)
            for layer in layers[len(layers) - keep :]:
                layer.requires_grad_(True)
            if keep:
                final_norm = (
                    self.model.layer_norm
                    if self.is_whisper
                    else getattr(self.model.encoder, "layer_norm", None)
                )
                if final_norm is not None:
                    final_norm.requires_grad_(True)


__all__ = ["SpeechEncoder"]
