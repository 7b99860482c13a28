"""Does the LLM transcribe when the audio reaches it as the CTC head's compressed tokens?

The audio-LLM's phases 1-2 (LM loss through the connector) move held-out WER little in a CPU budget.
This measures the other route: the connector CTC-aligned to the LLM's embeddings (emosllm's phase 0,
``--ctc_alignment_steps``), each clip's best CTC path (blanks dropped, repeats merged) given to the
LLM as its own token embeddings in the ASR prompt's audio slot, and LoRA taught to copy them with the
LM loss (half the rows the CTC hypothesis of a training clip -> its reference, half the reference's
own tokens: text only). Prints and writes the CTC head's greedy WER, the frozen LLM's, and the LLM's
after every ``--eval_every`` copy steps, on the run's held-out ASR prompts.

    accelerate launch recipes/emosllm.py --phases 1 --phase_max_steps 1 1 1 --ctc_alignment_steps 200 \\
        --output_dir outputs/emosllm-ctc          # phase 0 (CTC) and the encoder cache
    python benchmarks/ctc_copy_asr.py --run_dir outputs/emosllm-ctc --copy_steps 80
"""

from __future__ import annotations

import argparse
import glob
import os
import random
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from serhub.metrics.asr import word_error_rate  # noqa: E402
from serhub.recipes.audio_llm_common import AudioLLMArguments, build_model  # noqa: E402
from serhub.recipes.ctc_alignment import (  # noqa: E402
    BLANK,
    CTCEmbeddingHead,
    ctc_alignment_loss,
    ctc_targets,
    pad_rows,
)
from serhub.recipes.reporting import write_json  # noqa: E402


def cached(run_dir: str, name: str):
    files = sorted(glob.glob(os.path.join(run_dir, "encoder_cache", f"{name}-*.arrow")))
    if not files:
        raise SystemExit(
            f"{run_dir}/encoder_cache has no {name}-*.arrow: run the emosllm command in this docstring"
        )
    return datasets.Dataset.from_file(files[0])


def train_head(model, tokenizer, train, steps: int, rng) -> CTCEmbeddingHead:
    """The CTC head's blank and scale again (they are not saved), the aligned connector frozen."""
    head = CTCEmbeddingHead(model.get_input_embeddings().weight)
    for p in model.connector.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.AdamW(head.parameters(), lr=3e-2)
    for _ in range(steps):
        rows = [train[i] for i in rng.sample(range(len(train)), 16)]
        targets = ctc_targets(tokenizer, [r["transcript"] for r in rows])
        loss = ctc_alignment_loss(model, head, pad_rows(rows), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head


@torch.no_grad()
def best_paths(model, head, dataset, pad_id: int, size: int = 32) -> list[list[int]]:
    """Each clip's best CTC path as LLM token ids (blanks dropped, repeats merged)."""
    paths = []
    for start in range(0, len(dataset), size):
        rows = [dataset[i] for i in range(start, min(start + size, len(dataset)))]
        tokens, mask = model.audio_tokens(**pad_rows(rows))
        for row, n in zip(head(tokens).argmax(-1).T.tolist(), mask.sum(-1).tolist()):
            ids, previous = [], BLANK
            for index in row[: int(n)]:
                if index not in (previous, BLANK):
                    ids.append(index - 1)
                previous = index
            paths.append(ids or [pad_id])
    return paths


def prompt(model, processor, paths, answers=None):
    """The ASR prompt with each row's token ids as its audio tokens (their input embeddings)."""
    batch = processor(
        audio_token_counts=[len(p) for p in paths], task="asr", prompt_index=0, shuffle_labels=False,
        transcripts=answers,
    )  # fmt: skip
    embedding = model.get_input_embeddings()
    slots = batch["input_ids"] == model.config.audio_token_id
    embeds = embedding(batch["input_ids"].masked_fill(slots, 0))
    audio = torch.cat([embedding.weight[torch.tensor(p)] for p in paths])
    return batch, embeds.masked_scatter(slots[..., None], audio.to(embeds.dtype))


@torch.no_grad()
def llm_wer(model, processor, paths, references) -> tuple[float, list[str]]:
    hypotheses = []
    for start in range(0, len(paths), 8):
        batch, embeds = prompt(model, processor, paths[start : start + 8])
        out = model.language_model.generate(
            inputs_embeds=embeds, attention_mask=batch["attention_mask"], max_new_tokens=32, do_sample=False
        )
        hypotheses += [t.strip() for t in processor.tokenizer.batch_decode(out, skip_special_tokens=True)]
    return word_error_rate(hypotheses, references), hypotheses


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", required=True, help="an emosllm output folder with phase0_ctc/")
    parser.add_argument("--head_steps", type=int, default=40)
    parser.add_argument("--copy_steps", type=int, default=80)
    parser.add_argument("--eval_every", type=int, default=40)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--output", default="benchmarks/results/ctc_copy_asr.json")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rng = random.Random(0)
    model, processor = build_model(AudioLLMArguments(connector="linear"), ["neutral", "happy"])
    model.connector.load_state_dict(
        load_file(os.path.join(args.run_dir, "phase0_ctc", "connector.safetensors"))
    )
    tokenizer = processor.tokenizer
    train, evaluation = cached(args.run_dir, "asr_train"), cached(args.run_dir, "asr_eval")
    start = time.time()
    head = train_head(model, tokenizer, train, args.head_steps, rng)
    train_paths = best_paths(model, head, train, tokenizer.pad_token_id)
    eval_paths = best_paths(model, head, evaluation, tokenizer.pad_token_id)
    references = list(evaluation["transcript"])
    decoded = [tokenizer.decode(p, skip_special_tokens=True) for p in eval_paths]
    model.eval()
    frozen, _ = llm_wer(model, processor, eval_paths, references)
    results = {
        "run_dir": args.run_dir, "eval_clips": len(references), "train_clips": len(train),
        "ctc_greedy_wer": word_error_rate(decoded, references), "frozen_llm_wer": frozen, "curve": [],
    }  # fmt: skip
    print({k: v for k, v in results.items() if k != "curve"}, flush=True)
    model.enable_lora()
    lora = [p for n, p in model.language_model.named_parameters() if "lora_" in n]
    for p in lora:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(lora, lr=args.learning_rate)
    texts = list(train["transcript"])
    model.train()
    for step in range(1, args.copy_steps + 1):
        rows = rng.sample(range(len(train)), args.batch_size)
        paths = [
            train_paths[i]
            if j % 2 == 0
            else tokenizer(texts[i], add_special_tokens=False)["input_ids"] or [0]
            for j, i in enumerate(rows)
        ]
        batch, embeds = prompt(model, processor, paths, [texts[i] for i in rows])
        loss = model.language_model(
            inputs_embeds=embeds, attention_mask=batch["attention_mask"], labels=batch["labels"]
        ).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % args.eval_every == 0 or step == args.copy_steps:
            model.eval()
            wer, hypotheses = llm_wer(model, processor, eval_paths, references)
            model.train()
            entry = {
                "step": step,
                "loss": round(float(loss), 4),
                "llm_wer": wer,
                "seconds": round(time.time() - start),
            }
            results["curve"].append(entry)
            print(entry, list(zip(hypotheses[:4], references[:4])), flush=True)
    write_json(args.output, results, portable_paths=True)
    return results


if __name__ == "__main__":
    main()
