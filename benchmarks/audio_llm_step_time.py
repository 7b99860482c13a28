"""Time per training step of the EmoSLLM default's phase 3, and the tokens it pays for, side by side.

Builds the main job's model (``recipes/configs/emosllm/default.yaml``: Whisper tiny.en, linear
projector, SmolLM2-135M-Instruct with LoRA), caches the encoder outputs of the first ``--clips``
training clips of the embedded corpus (as given, and with their silences trimmed), and times
``--steps`` optimizer steps of phase 3's batches (SER-only prompts, the label-restricted
cross-entropy) for each variant, all in one process, each change added to the one before:

1. as before: the chat template's own system turn (SmolLM2's names the assistant), clips as given,
   LoRA dropout 0.05;
2. an empty system turn (``--system_prompt ""``);
3. leading/trailing silence trimmed (``--trim_silence_db 35``): fewer audio tokens;
4. no LoRA dropout (``--lora_dropout 0``: peft then draws no dropout masks, which a CPU profile of
   the step shows at ~10 %);
5. batches of clips of similar length (``--train_sampling_strategy group_by_length``).

Variants 1-4 train on the same clips in the same batches; 5 on the same clips, grouped. Prints tokens per step (real and padded),
seconds per step (median) and the speed-up over the first; ``--profile`` adds torch.profiler's top
operators of one step of the first and fourth variants.

    python benchmarks/audio_llm_step_time.py --output_json benchmarks/results/audio_llm_step_time.json
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time

import numpy as np
import torch
from serhub.recipes.arguments import CONFIGS
from serhub.recipes.reporting import write_json


def default_model_args():
    """The main job's AudioLLMArguments, from its default config."""
    from serhub.recipes.audio_llm_common import AudioLLMArguments
    from serhub.recipes.emosllm import ARGUMENTS
    from trl import TrlParser

    parsed = TrlParser(dataclass_types=list(ARGUMENTS)).parse_args_and_config(
        args=["--config", str(CONFIGS / "emosllm" / "default.yaml"), "--output_dir", tempfile.mkdtemp()]
    )
    return next(p for p in parsed if isinstance(p, AudioLLMArguments))


def batches(lengths: np.ndarray, batch_size: int, steps: int, grouped: bool, seed: int) -> list[list[int]]:
    """``steps`` batches of clip indices, epoch after epoch: random, or grouped by length as the
    recipes group them (``LengthGroupedSampler``)."""
    from serhub.recipes.data import LengthGroupedSampler

    out, epoch = [], 0
    while len(out) < steps:
        if grouped:
            sampler = LengthGroupedSampler(lengths, batch_size, seed=seed)
            sampler.set_epoch(epoch)
            order = list(sampler)
        else:
            order = np.random.default_rng([seed, epoch]).permutation(len(lengths)).tolist()
        out += [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
        epoch += 1
    return out[:steps]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant (after --warmup)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--profile", action="store_true", help="profile one untimed step of variants 1 and 4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_json", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import datasets
    from serhub.recipes.audio_llm_common import CachedAudioLLMCollator, build_model, cache_split
    from serhub.recipes.data import encode_labels, load_dataset_dict, with_trimming

    # built as before the savings (variant 1); the variants then switch each one on
    model_args = dataclasses.replace(
        default_model_args(), system_prompt=None, trim_silence_db=None, lora_dropout=0.05
    )
    corpus = load_dataset_dict("synthetic_emotions_v2")
    labels = corpus["train"].features["emotion"].names
    train = (
        corpus["train"].select(range(args.clips)).cast_column("audio", datasets.Audio(sampling_rate=16000))
    )
    train = encode_labels(train, "emotion", labels)
    model, processor = build_model(model_args, labels)
    model.enable_lora()
    untrimmed = processor.feature_extractor
    rows = {}
    with tempfile.TemporaryDirectory() as cache:
        for trim in (None, 35.0):
            processor.feature_extractor = with_trimming(untrimmed, trim)
            cached = cache_split(model, processor, train, cache, f"bench{trim}", 16, ("labels", "transcript"))
            rows[trim] = [cached[i] for i in range(len(cached))]
    lengths = np.array([len(r["encoder_hidden_states"]) for r in rows[35.0]])
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    model.train()

    dropouts = {
        name: module["default"] for name, module in model.named_modules() if name.endswith("lora_dropout")
    }
    variants = [  # (name, system prompt, trim dB, LoRA dropout on, batches grouped by length)
        ("as before", None, None, True, False),
        ("+ empty system turn", "", None, True, False),
        ("+ silences trimmed", "", 35.0, True, False),
        ("+ no LoRA dropout", "", 35.0, False, False),
        ("+ batches grouped by length", "", 35.0, False, True),
    ]
    results = []
    for index, (name, system_prompt, trim, lora_dropout, grouped) in enumerate(variants):
        processor.system_prompt = system_prompt
        for module_name, dropout in dropouts.items():
            model.get_submodule(module_name)["default"] = dropout if lora_dropout else torch.nn.Identity()
        collator = CachedAudioLLMCollator(
            processor, "asr+ser", labels, seed=args.seed, ser_only_fraction=1.0, ser_only_objective="label_ce"
        )
        plan = batches(lengths, args.batch_size, args.warmup + args.steps, grouped, args.seed)
        if args.profile and index in (0, 3):  # one untimed forward + backward, no optimizer step
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                model(**collator([rows[trim][i] for i in plan[0]])).loss.backward()
            optimizer.zero_grad(set_to_none=True)
            print(f"--- {name}\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
        times, real, padded = [], [], []
        for k, indices in enumerate(plan):
            batch = collator([rows[trim][i] for i in indices])
            start = time.perf_counter()
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            elapsed = time.perf_counter() - start
            if k >= args.warmup:
                times.append(elapsed)
                real.append(int(batch["attention_mask"].sum()))
                padded.append(int(batch["attention_mask"].numel()))
        results.append(
            {
                "variant": name,
                "s_per_step": round(statistics.median(times), 3),
                "s_per_step_all": [round(t, 3) for t in times],
                "tokens_per_step": round(float(np.mean(real)), 1),
                "padded_tokens_per_step": round(float(np.mean(padded)), 1),
            }
        )
    base = results[0]["s_per_step"]
    for r in results:
        r["speedup"] = round(base / r["s_per_step"], 2)
        print(
            f"{r['variant']:48s} {r['s_per_step']:6.2f} s/step  {r['speedup']:.2f}x  "
            f"tokens {r['tokens_per_step']:.0f} real / {r['padded_tokens_per_step']:.0f} padded"
        )
    out = {
        "what": "EmoSLLM default, phase-3 training step (SER-only prompts, label CE; LoRA + linear projector), "
        "cached Whisper tiny.en frames of the embedded corpus's first clips",
        "command": "python benchmarks/audio_llm_step_time.py --output_json benchmarks/results/audio_llm_step_time.json",
        "batch_size": args.batch_size,
        "clips": args.clips,
        "threads": torch.get_num_threads(),
        "results": results,
    }
    if args.output_json:
        write_json(args.output_json, out)
    return out


if __name__ == "__main__":
    main()
