"""How fast CTC alignment (recipes/ctc_alignment.py) teaches a connector to carry words, on a CPU.

    HF_HUB_OFFLINE=1 python benchmarks/ctc_alignment_curve.py --connector linear --steps 200
    HF_HUB_OFFLINE=1 python benchmarks/ctc_alignment_curve.py --sampled_tokens all 4096 \\
        [--asr_dataset DIR] [--unseen_voices data/synthetic_emotions_v2_heldout]

The EmoSLLM default's parts (Whisper tiny.en frozen and cached, the connector, SmolLM2-135M-Instruct)
and its ASR corpus (the Asterisk telephone prompts of at most 16 words; the 24 held-out test prompts
scored). Every ``--eval_every`` steps: the CTC head's own greedy WER; at the end (and at
``--llm_eval_at`` steps) the frozen LLM's greedy WER when it reads the aligned audio tokens with the
ASR prompt: ``raw`` (the connector's tokens, as the model runs), ``compressed`` (the LLM's own embeddings of
the CTC best path, blank frames dropped and repeats merged, as Speech-LLaMA's CTC compressor) and
``mixture`` (each token replaced by the CTC posterior-weighted mixture of the LLM's embeddings, as
LegoSLM). ``--sampled_tokens``: one curve per value from the same start, the softmax over the whole
vocabulary ("all") or over the corpus's tokens plus N drawn (a sampled softmax), with the seconds per
step side by side; ``--unseen_voices``: the CTC head's WER on voices and sentences no split trains on.
Writes the curves as JSON to --output_json and prints them.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import datasets
import torch
from serhub.metrics.asr import word_error_rate
from serhub.recipes.audio_llm_common import AudioLLMArguments, build_model, cache_split, evaluate_wer
from serhub.recipes.ctc_alignment import ctc_greedy_transcripts, pad_rows, train_ctc_alignment
from serhub.recipes.data import embedded_dataset_path, load_dataset_dict
from serhub.recipes.emosllm_data import check_asr_leak
from serhub.recipes.reporting import write_json


@torch.no_grad()
def llm_transcript(model, processor, head, row, kind: str) -> str:
    """The frozen LLM's greedy answer to the ASR prompt with one clip's audio given as its own embeddings."""
    tokens, _ = model.audio_tokens(**pad_rows([row]))
    posterior = head(tokens)[:, 0].exp()  # N, V + 1 (blank first)
    embeddings = model.get_input_embeddings().weight.float()
    if kind == "mixture":
        audio = posterior[:, 1:] @ embeddings  # the blank's share left out
    else:
        kept, previous = [], 0
        for index in posterior.argmax(-1).tolist():
            if index not in (0, previous):
                kept.append(index - 1)
            previous = index
        audio = embeddings[torch.tensor(kept or [processor.tokenizer.pad_token_id])]
    inputs = processor(audio_token_counts=[audio.shape[0]], task="asr", prompt_index=0, shuffle_labels=False)
    ids = inputs["input_ids"]
    placeholder = ids == model.config.audio_token_id
    embeds = model.get_input_embeddings()(ids.masked_fill(placeholder, 0))
    embeds = embeds.masked_scatter(placeholder[..., None], audio.to(embeds.dtype))
    out = model.language_model.generate(
        inputs_embeds=embeds, attention_mask=inputs["attention_mask"], max_new_tokens=48, do_sample=False
    )
    return processor.tokenizer.decode(out[0], skip_special_tokens=True).strip()


def sampled(value: str) -> int | None:
    return None if value == "all" else int(value)


def asr_splits(path: str | None, extra: list[str]) -> dict:
    """The ASR corpus's train and test splits (at most 16 words a clip; 24 test prompts): the embedded
    Asterisk prompts, or ``path`` (a saved DatasetDict with "audio" and "transcript"); the train split
    joined by each ``extra`` dataset's (as emosllm's --asr_extra_datasets)."""
    asr = load_dataset_dict(path or str(embedded_dataset_path("asterisk_prompts")))
    audio = datasets.Audio(sampling_rate=16000)
    if extra:
        parts = [asr["train"].select_columns(["audio", "transcript"]).cast_column("audio", audio)]
        for name in extra:
            clips = load_dataset_dict(name)["train"].select_columns(["audio", "transcript"])
            check_asr_leak(name, clips["transcript"], asr["test"]["transcript"])
            parts.append(clips.cast_column("audio", audio))
        asr = datasets.DatasetDict({"train": datasets.concatenate_datasets(parts), "test": asr["test"]})
    splits = {
        k: asr[k]
        .cast_column("audio", audio)
        .filter(lambda t: len(t.split()) <= 16, input_columns="transcript")
        for k in ("train", "test")
    }
    splits["test"] = splits["test"].select(range(min(24, len(splits["test"]))))
    return splits


def unseen_voices(path: str, clips: int) -> datasets.Dataset:
    """``clips`` clips of a built synthetic_emotions_v2 ``heldout`` split (voices and sentences no
    training split holds), spread over its speakers."""
    split = datasets.load_from_disk(path)["heldout"].cast_column("audio", datasets.Audio(sampling_rate=16000))
    step = max(1, len(split) // clips)
    return split.select(range(0, len(split), step)[:clips]).select_columns(["audio", "transcript"])


def run_variant(args, sampled_tokens, splits) -> dict:
    """One alignment curve from the same start: the connector re-initialised with seed 0."""
    torch.manual_seed(0)
    model, processor = build_model(AudioLLMArguments(connector=args.connector), ["neutral", "happy"])
    model.eval()
    cached = {
        k: cache_split(model, processor, v, args.cache_dir, f"{args.cache_prefix}{k}", 16, ("transcript",))
        for k, v in splits.items()
    }
    scored = {k: [cached[k][i] for i in range(len(cached[k]))] for k in cached if k != "train"}
    llm_at = set(args.llm_eval_at) | {args.steps}

    def ctc_wer(rows, head) -> float:
        hypotheses = []
        for start in range(0, len(rows), 16):
            batch = pad_rows(rows[start : start + 16])
            hypotheses += ctc_greedy_transcripts(model, head, batch, processor.tokenizer)
        return round(word_error_rate(hypotheses, [r["transcript"] for r in rows]), 3)

    def measure(step, head) -> dict:
        entry = {"ctc_wer": ctc_wer(scored["test"], head)}
        if "unseen" in scored:
            entry["ctc_wer_unseen_voices"] = ctc_wer(scored["unseen"], head)
        if step in llm_at:
            for kind in args.llm_inputs:
                wer = (
                    evaluate_wer(model, processor, cached["test"], 16)
                    if kind == "raw"
                    else word_error_rate(
                        [llm_transcript(model, processor, head, r, kind) for r in scored["test"]],
                        [r["transcript"] for r in scored["test"]],
                    )
                )
                entry["llm_wer" if kind == "raw" else f"llm_wer_{kind}"] = round(wer, 3)
        print(sampled_tokens, step, entry, flush=True)
        return entry

    llm_before = round(evaluate_wer(model, processor, cached["test"], 16), 3)
    start = time.time()
    _, history = train_ctc_alignment(
        model, processor.tokenizer, cached["train"], pad_rows, args.steps, args.batch_size, args.learning_rate,
        log_every=args.eval_every, callback=measure, sampled_tokens=sampled_tokens,
    )  # fmt: skip
    steps_s = history[-1]["seconds"]  # training alone: the evaluations are timed out of it
    return {
        "sampled_tokens": "all" if sampled_tokens is None else sampled_tokens,
        "llm_wer_before": llm_before, "curve": history, "wall_s": round(time.time() - start, 1),
        "train_clips": len(cached["train"]), "test_clips": len(scored["test"]),
        "unseen_clips": len(scored.get("unseen", [])), "seconds_per_step": round(steps_s / args.steps, 3),
    }  # fmt: skip


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connector", default="linear", choices=("linear", "query_pooling"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--eval_every", type=int, default=25)
    parser.add_argument(
        "--sampled_tokens", nargs="+", type=sampled, default=[None],
        help="one curve per value: 'all' (the whole vocabulary per step) or N (the corpus's tokens + N drawn)",
    )  # fmt: skip
    parser.add_argument(
        "--asr_dataset", default=None, help="a saved DatasetDict (default: the Asterisk prompts)"
    )
    parser.add_argument(
        "--asr_extra_datasets", nargs="*", default=[], help="their train splits join the ASR training clips"
    )
    parser.add_argument(
        "--unseen_voices", default=None, help="a built synthetic_emotions_v2 with a heldout split"
    )
    parser.add_argument("--unseen_clips", type=int, default=40)
    parser.add_argument("--llm_eval_at", type=int, nargs="*", default=[])
    parser.add_argument("--llm_inputs", nargs="+", default=["raw"], choices=("raw", "compressed", "mixture"))
    parser.add_argument("--cache_dir", default="outputs/ctc_alignment_curve/encoder_cache")
    parser.add_argument("--output_json", default=None)
    args = parser.parse_args(argv)
    sources = [str(Path(args.asr_dataset).resolve())] if args.asr_dataset else []
    sources += args.asr_extra_datasets
    named = hashlib.sha1("|".join(sources).encode()).hexdigest()[:8] if sources else ""
    args.cache_prefix = f"asr{named}_"
    splits = asr_splits(args.asr_dataset, args.asr_extra_datasets)
    if args.unseen_voices:
        splits["unseen"] = unseen_voices(args.unseen_voices, args.unseen_clips)
    variants = [run_variant(args, n, splits) for n in args.sampled_tokens]
    result = {
        "connector": args.connector, "steps": args.steps, "learning_rate": args.learning_rate,
        "batch_size": args.batch_size, "asr_dataset": args.asr_dataset or "asterisk_prompts",
        "asr_extra_datasets": args.asr_extra_datasets,
        "variants": variants,
    }  # fmt: skip
    base = variants[0]
    for variant in variants:
        last = variant["curve"][-1]
        print(
            f"sampled_tokens={variant['sampled_tokens']}: {variant['seconds_per_step']} s/step "
            f"({base['seconds_per_step'] / variant['seconds_per_step']:.2f}x the first), "
            f"CTC WER {last['ctc_wer']}"
            + (f", unseen voices {last['ctc_wer_unseen_voices']}" if "ctc_wer_unseen_voices" in last else "")
        )
    if args.output_json:
        write_json(args.output_json, result)
    return result


if __name__ == "__main__":
    main()
