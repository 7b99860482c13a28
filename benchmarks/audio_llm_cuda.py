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


def main(argv=None) -> int:
    import argparse

    from audio_llm_fixtures import make_encoder, make_llm, make_tokenizer
    from serhub.modeling import AudioLLMForConditionalGeneration
    from serhub.recipes.audio_llm_common import AudioLLMTrainer, CachedAudioLLMCollator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="the device compared with the CPU")
    cuda = torch.device(parser.parse_args(argv).device)
    if cuda.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check here (run it on a GPU machine, or pass --device cpu)")
        return 0
    name = torch.cuda.get_device_name(0) if cuda.type == "cuda" else "cpu"
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
        model.config.class_counts = [3, 2, 2, 1]
        model.enable_lora()
        if connector == "vae_ib":  # every encoder layer cached: (T, L, D)
            layers = model.config.audio_config.encoder_layers + 1
            batch_rows = [
                {**r, "encoder_hidden_states": np.repeat(r["encoder_hidden_states"][:, None], layers, 1)}
                for r in rows
            ]
        else:
            batch_rows = rows
        collator = CachedAudioLLMCollator(processor, "asr+ser", LABELS, seed=0, joint_label_targets=True)
        batch = collator(batch_rows)

        def loss_of(m, b, processor=processor):
            trainer = AudioLLMTrainer.__new__(AudioLLMTrainer)
            trainer.asr_weight_schedule, trainer.kl_weight_schedule = (lambda p: 0.5), None
            trainer.state = type("S", (), {"global_step": 0, "max_steps": 1})()
            trainer.joint_label_weight, trainer.processing_class = 1.0, processor
            return trainer.compute_loss(m, dict(b))

        cpu_model = copy.deepcopy(model).eval()
        gpu_model = copy.deepcopy(model).to(cuda).eval()
        with torch.no_grad():
            a, b = loss_of(cpu_model, batch).item(), loss_of(gpu_model, to(batch, cuda)).item()
            check(
                f"{connector}: joint loss CPU == GPU",
                abs(a - b) < 1e-4 * max(1, abs(a)),
                f"{a:.6f} / {b:.6f}",
            )
            with torch.autocast(cuda.type, dtype=torch.bfloat16):
                c = loss_of(gpu_model, to(batch, cuda)).item()
            check(
                f"{connector}: bf16 autocast loss", np.isfinite(c) and abs(c - a) < 0.05 * abs(a), f"{c:.4f}"
            )
            for mode in ("label_logits", "transcript_conditioned"):
                task = {"transcript_conditioned": "asr+ser"}.get(mode, "ser")
                inputs = CachedAudioLLMCollator(
                    processor, task, LABELS, with_answers=False, fixed_prompt=True,
                    answer_prefix="| ASR:" if task != "ser" else None,
                )(batch_rows)  # fmt: skip
                x = cpu_model.as_classifier(mode)(**inputs).logits
                y = gpu_model.as_classifier(mode)(**to(inputs, cuda)).logits.cpu()
                check(
                    f"{connector}: {mode} logits CPU == GPU",
                    torch.allclose(x, y, atol=1e-3),
                    f"max diff {float((x - y).abs().max()):.2e}",
                )
            inputs = CachedAudioLLMCollator(processor, "asr", with_answers=False, fixed_prompt=True)(
                batch_rows
            )
            g_cpu = cpu_model.generate(**inputs, max_new_tokens=8, do_sample=False)
            g_gpu = gpu_model.generate(**to(inputs, cuda), max_new_tokens=8, do_sample=False).cpu()
            check(f"{connector}: greedy generation CPU == GPU", torch.equal(g_cpu, g_gpu))
        gpu_model.train()
        opt = torch.optim.AdamW([p for p in gpu_model.parameters() if p.requires_grad], lr=1e-2)
        losses, start = [], time.time()
        for _ in range(STEPS):
            loss = loss_of(gpu_model, to(batch, cuda))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        if cuda.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.time() - start
        check(
            f"{connector}: {STEPS} GPU steps lower the loss",
            np.mean(losses[-10:]) < 0.95 * np.mean(losses[:10]),
            f"{losses[0]:.3f} -> {losses[-1]:.3f}, {1000 * seconds / STEPS:.0f} ms/step",
        )
    print(f"{len(failures)} failures" + (f": {failures}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
