"""Speed, consistency and size of serhub's audio-LLM (Whisper tiny.en -> query pooling -> SmolLM2-135M).

    HF_HUB_OFFLINE=1 python benchmarks/audio_llm_speed.py

(benchmarks/results/audio_llm_speed.json was written with ``--threads 1 --repeats 5`` added: on a 2-core
machine shared with other jobs, one thread and more passes give steadier numbers.)

Built with the real offline assets (``offline:whisper-tiny.en`` + ``offline:smollm2-135m-instruct``,
``from_pretrained_components``; the query-pooling connector is new, untrained) on --num_clips real
speech clips of different lengths (the synthetic_emotions test split, else Asterisk's 8 kHz prompts
resampled to 16 kHz). CPU, fp32, eval and no_grad unless said otherwise. One run measures:

1. ``AudioLLMForAudioClassification`` in "label_logits" mode (one forward pass scores every label) vs
   ``generate()`` + parsing the answer text (what Qwen-Audio style users do), same weights and inputs:
   the speed-up, and how often argmax label == parsed label. The parse takes the label name found
   first in the answer (case-insensitive, at a word start, so "sadness" -> sad), else "neutral" (as
   THAU-UPM). The connector is untrained, so both predictions are arbitrary: the agreement is a
   consistency figure, not an accuracy.
2. The classifier on a batch vs one clip at a time: throughput ratio and max |delta prob| (softmax
   over the label scores). Twice: with one fixed prompt (query pooling gives every clip the same
   number of audio tokens, so only the encoder sees padding) and with a random prompt per clip (rows
   of different lengths: the LLM sees left padding too).
3. One LoRA training step (forward + backward, batch of --num_clips, task "asr+ser" with labels and
   transcripts): time, trainable parameters and the peak RSS (``ru_maxrss``; the peak is reset first
   through /proc/self/clear_refs where the kernel allows it).
4. Trainable parameters of the EmoSLLM configuration (WavLM Large + Llama-3.2-3B-Instruct, query
   pooling, LoRA r=8 on q/k/v/o) counted on the meta device, next to the paper's 12.5 M.

Prints a table and writes every timing as JSON to --output_json (temp file + os.replace). On a machine
shared with other jobs, the load average is printed: timings are noisy when it exceeds the threads.
"""

from __future__ import annotations

import argparse
import gc
import glob
import io
import os
import platform
import re
import resource
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import serhub.modeling  # noqa: F401  (registers the serhub classes with the Auto* factories)
import torch
import transformers
from serhub.modeling import AudioLLMConfig, AudioLLMForAudioClassification, AudioLLMForConditionalGeneration
from serhub.modeling.offline_assets import resolve_pretrained
from serhub.recipes.reporting import write_json
from transformers import LlamaConfig, WavLMConfig

warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # peft calls a deprecated name

LABELS = ["neutral", "happy", "sad", "angry", "fear", "surprise"]
SR = 16000
EMOSLLM_TRAINABLE = 12.5e6  # EmoSLLM (arXiv:2508.14130): trainable parameters reported in the paper
ASTERISK = "/usr/share/asterisk/sounds/en/*.wav"

# EmoSLLM's parts. WavLM Large (microsoft/wavlm-large): the other fields keep WavLMConfig's defaults,
# which are Large's too (7 conv layers of 512, 320 relative-position buckets). Llama-3.2-3B-Instruct:
# head_dim = 3072 / 24 = 128 and rms_norm_eps 1e-5 by default; the llama3 RoPE scaling is that of the
# released config (it changes no parameter count).
WAVLM_LARGE = dict(
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    intermediate_size=4096,
    feat_extract_norm="layer",
    do_stable_layer_norm=True,
    conv_bias=True,
)
LLAMA_32_3B = dict(
    hidden_size=3072,
    intermediate_size=8192,
    num_hidden_layers=28,
    num_attention_heads=24,
    num_key_value_heads=8,
    vocab_size=128256,
    tie_word_embeddings=True,
    max_position_embeddings=131072,
    rope_parameters=dict(
        rope_type="llama3",
        rope_theta=500000.0,
        factor=32.0,
        low_freq_factor=1.0,
        high_freq_factor=4.0,
        original_max_position_embeddings=8192,
    ),
)
EMOSLLM = dict(connector="query_pooling", num_queries=32, mapper_layers=2, audio_token_id=128256)
EMOSLLM_VARIANTS = {
    "as briefed (mapper width = WavLM's 1024, LoRA r=8)": dict(lora_r=8, lora_alpha=16),
    "mapper_hidden_size=768 (the width EmoSLLM states)": dict(
        mapper_hidden_size=768, lora_r=8, lora_alpha=16
    ),
    "mapper_hidden_size=512": dict(mapper_hidden_size=512, lora_r=8, lora_alpha=16),
    "lora_r=16": dict(lora_r=16, lora_alpha=32),
}


# ---------------------------------------------------------------------------------------------- helpers
def load_clips(dataset: Path, n: int) -> tuple[list[np.ndarray], list[str], list[str], str]:
    """``n`` 16-kHz clips with their emotion and transcript (placeholders for the Asterisk prompts)."""
    import soundfile as sf

    if dataset.is_dir():
        import datasets

        split = datasets.load_from_disk(str(dataset))["test"]
        # undecoded bytes read with soundfile: no dependence on datasets' audio backend (torchcodec)
        split = split.cast_column("audio", datasets.Audio(decode=False))
        names = split.features["emotion"].names
        clips, labels, transcripts = [], [], []
        for row in split.select(range(n)):
            audio, rate = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")
            if rate != SR:
                raise ValueError(f"{dataset}: expected {SR} Hz audio, got {rate}")
            clips.append(audio)
            labels.append(names[row["emotion"]])
            transcripts.append(row["transcript"])
        return clips, labels, transcripts, f"{dataset} (test, first {n} rows)"
    import torchaudio

    clips, files = [], sorted(glob.glob(ASTERISK))
    for path in files:
        audio, rate = sf.read(path, dtype="float32")
        if audio.ndim == 1 and 1.0 <= len(audio) / rate <= 8.0:
            clips.append(torchaudio.functional.resample(torch.from_numpy(audio), rate, SR).numpy())
        if len(clips) == n:
            break
    if len(clips) < n:
        raise FileNotFoundError(f"neither {dataset} nor {n} usable clips in {ASTERISK}")
    return clips, ["neutral"] * n, ["hello there"] * n, f"{ASTERISK} (resampled to {SR} Hz)"


def time_ms(cases: dict, warmup: int, repeats: int) -> tuple[dict[str, list[float]], dict]:
    """Wall times (ms) of each case ({name: callable}), interleaved one call per round so background load
    slows every case alike; also the last result of each call."""
    times, results = {name: [] for name in cases}, {}
    for round_ in range(warmup + repeats):
        for name, call in cases.items():
            start = time.perf_counter()
            results[name] = call()
            if round_ >= warmup:
                times[name].append((time.perf_counter() - start) * 1000)
    return times, results


def median(ms: list[float]) -> float:
    return round(statistics.median(ms), 1)


def parse_label(text: str, labels: list[str], fallback: str = "neutral") -> str | None:
    """The label whose name appears first in ``text`` (at a word start), else ``fallback``."""
    pattern = r"\b(" + "|".join(re.escape(label) for label in labels) + ")"
    match = re.search(pattern, text, flags=re.IGNORECASE)
    return match.group(1).lower() if match else fallback


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (which ``ru_maxrss`` reads) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def count_trainable(model: torch.nn.Module) -> dict[str, int]:
    counts = dict(connector=0, lora=0, other=0, total=0, frozen=0)
    for name, param in model.named_parameters():
        if not param.requires_grad:
            counts["frozen"] += param.numel()
            continue
        kind = "lora" if "lora_" in name else "connector" if "connector." in name else "other"
        counts[kind] += param.numel()
        counts["total"] += param.numel()
    return counts


# ---------------------------------------------------------------------------------------------- sections
def build_models(tmp: str):
    enc = resolve_pretrained("offline:whisper-tiny.en")
    llm = resolve_pretrained("offline:smollm2-135m-instruct")
    torch.manual_seed(0)  # the new connector's initialisation
    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        enc, llm, labels=LABELS, connector="query_pooling"
    )
    model.save_pretrained(tmp)
    clf = AudioLLMForAudioClassification.from_pretrained(tmp, classification_mode="label_logits")
    return model.eval(), processor, clf.eval(), f"{enc} + {llm}"


def bench_generate_vs_logits(model, processor, clf, clips, args) -> dict:
    inputs = processor(audio=clips, task="ser", prompt_index=0, shuffle_labels=False, sampling_rate=SR)
    prompt_length = inputs["input_ids"].shape[1]

    def classify():
        with torch.no_grad():
            return clf(**inputs).logits

    def generate_and_parse(max_new_tokens):
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        answers = processor.batch_decode(out[:, prompt_length:], skip_special_tokens=True)
        return answers, [parse_label(a, LABELS) for a in answers]

    lengths = [args.max_new_tokens] + ([args.long_max_new_tokens] if args.long_max_new_tokens else [])
    cases = {"label_logits": classify}
    cases.update({f"generate {k}": lambda k=k: generate_and_parse(k) for k in lengths})
    ms, results = time_ms(cases, args.warmup, args.repeats)
    scores = results["label_logits"]
    argmax = [LABELS[i] for i in scores.argmax(-1).tolist()]
    generations = []
    for k in lengths:
        answers, parsed = results[f"generate {k}"]
        times = ms[f"generate {k}"]
        generations.append(
            dict(
                max_new_tokens=k,
                generate_ms=median(times),
                speedup_label_logits_over_generate=round(
                    statistics.median(times) / statistics.median(ms["label_logits"]), 2
                ),
                speedup_of_min=round(min(times) / min(ms["label_logits"]), 2),
                agreement=sum(a == p for a, p in zip(argmax, parsed)) / len(parsed),
                answers_naming_a_label=sum(parse_label(a, LABELS, None) is not None for a in answers)
                / len(answers),
                parsed_labels=parsed,
                answers=answers,
                generate_all_ms=[round(t, 1) for t in times],
            )
        )
    # sanity: the classifier's score of a one-token label is the LM's next-token log-probability
    with torch.no_grad():
        next_logp = model(**inputs).logits[:, -1].float().log_softmax(-1)
    one_token = [j for j, ids in enumerate(clf.config.prompt["label_token_ids"]) if len(ids) == 1]
    lm_gap = max(
        (scores[:, j] - next_logp[:, clf.config.prompt["label_token_ids"][j][0]]).abs().max().item()
        for j in one_token
    )
    return dict(
        label_logits_ms=median(ms["label_logits"]),
        label_logits_all_ms=[round(t, 1) for t in ms["label_logits"]],
        argmax_labels=argmax,
        label_probabilities=[[round(p, 4) for p in row] for row in scores.softmax(-1).tolist()],
        label_token_ids=clf.config.prompt["label_token_ids"],
        max_abs_diff_one_token_label_vs_lm_logprob=lm_gap,
        prompt_tokens=prompt_length,
        generations=generations,
    )


def unpad_rows(batch) -> list[dict]:
    """Each row of a processor batch on its own, without its padding (the very same prompt and audio)."""
    rows = []
    for i in range(batch["input_ids"].shape[0]):
        text, audio = batch["attention_mask"][i].bool(), batch["audio_attention_mask"][i].bool()
        rows.append(
            {
                "input_ids": batch["input_ids"][i : i + 1, text],
                "attention_mask": batch["attention_mask"][i : i + 1, text],
                "input_features": batch["input_features"][i : i + 1, audio],
                "audio_attention_mask": batch["audio_attention_mask"][i : i + 1, audio],
            }
        )
    return rows


def bench_batch_vs_single(clf, processor, clips, args) -> list[dict]:
    fixed = dict(task="ser", prompt_index=0, shuffle_labels=False, sampling_rate=SR)
    mixed = processor(audio=clips, task="ser", seed=0, sampling_rate=SR)  # a random prompt per clip
    variants = {
        "fixed prompt": (
            processor(audio=clips, **fixed),
            [processor(audio=[c], **fixed) for c in clips],  # the user's path: one call per clip
        ),
        "random prompt per clip": (mixed, unpad_rows(mixed)),
    }
    out = []
    for name, (batch, singles) in variants.items():

        def batched(batch=batch):
            with torch.no_grad():
                return clf(**batch).logits

        def one_by_one(singles=singles):
            with torch.no_grad():
                return torch.cat([clf(**s).logits for s in singles])

        ms, results = time_ms({"batched": batched, "single": one_by_one}, args.warmup, args.repeats)
        b, s = results["batched"], results["single"]
        delta_prob = (b.softmax(-1) - s.softmax(-1)).abs().max().item()
        lengths = batch["attention_mask"].sum(-1)
        out.append(
            dict(
                variant=name,
                batched_ms=median(ms["batched"]),
                singles_ms=median(ms["single"]),
                throughput_ratio=round(statistics.median(ms["single"]) / statistics.median(ms["batched"]), 2),
                throughput_ratio_of_min=round(min(ms["single"]) / min(ms["batched"]), 2),
                batched_clips_per_s=round(len(clips) / statistics.median(ms["batched"]) * 1000, 2),
                singles_clips_per_s=round(len(clips) / statistics.median(ms["single"]) * 1000, 2),
                max_abs_delta_prob=delta_prob,
                max_abs_delta_logit=(b - s).abs().max().item(),
                same_argmax=bool(torch.equal(b.argmax(-1), s.argmax(-1))),
                text_tokens_min_max=[int(lengths.min()), int(lengths.max())],
                mel_frames_min_max=[
                    int(batch["audio_attention_mask"].sum(-1).min()),
                    int(batch["audio_attention_mask"].sum(-1).max()),
                ],
                batched_all_ms=[round(t, 1) for t in ms["batched"]],
                singles_all_ms=[round(t, 1) for t in ms["single"]],
            )
        )
    return out


def bench_lora_step(model, processor, clips, labels, transcripts, args) -> dict:
    """enable_lora() adds adapters to ``model`` in place: run this after the other parts."""
    torch.manual_seed(0)  # LoRA initialisation and dropout
    model = model.enable_lora()
    model.train()
    counts = count_trainable(model)
    summary = model.trainable_parameters()
    batch = processor(
        audio=clips, task="asr+ser", labels=labels, transcripts=transcripts, sampling_rate=SR, seed=0
    )
    gc.collect()
    peak_reset = reset_peak_rss()
    rss_before, maxrss_before = current_rss_mib(), max_rss_mib()
    times, losses = [], []
    for step in range(args.warmup + args.repeats):
        start = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        elapsed = (time.perf_counter() - start) * 1000
        model.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step >= args.warmup:
            times.append(elapsed)
    maxrss_after = max_rss_mib()
    return dict(
        forward_backward_ms=median(times),
        forward_backward_min_ms=round(min(times), 1),
        forward_backward_all_ms=[round(t, 1) for t in times],
        losses=[round(x, 4) for x in losses],
        batch_tokens=list(batch["input_ids"].shape),
        answer_tokens=int((batch["labels"] != -100).sum()),
        trainable_parameters=counts["total"],
        trainable_connector=counts["connector"],
        trainable_lora=counts["lora"],
        trainable_other=counts["other"],
        trainable_summary=summary,
        peak_reset_before=peak_reset,
        rss_before_mib=round(rss_before, 1),
        maxrss_before_mib=round(maxrss_before, 1),
        maxrss_after_mib=round(maxrss_after, 1),
        peak_increase_mib=round(maxrss_after - maxrss_before, 1),
    )


def count_emosllm() -> list[dict]:
    rows = []
    for name, extra in EMOSLLM_VARIANTS.items():
        config = AudioLLMConfig(
            audio_config=WavLMConfig(**WAVLM_LARGE),
            text_config=LlamaConfig(**LLAMA_32_3B),
            **EMOSLLM,
            **extra,
        )
        row = dict(variant=name, **extra)
        try:
            with torch.device("meta"):
                model = AudioLLMForConditionalGeneration(config)
            encoder = sum(p.numel() for p in model.audio_encoder.parameters())
            llm = sum(p.numel() for p in model.language_model.parameters())
            connector_parts = {
                part: sum(p.numel() for p in module.parameters())
                if isinstance(module, torch.nn.Module)
                else 0
                for part, module in model.connector.named_children()
            }
            connector_parts["queries"] = model.connector.queries.numel()
            model.enable_lora()
            counts = count_trainable(model)
            off_meta = [n for n, p in model.named_parameters() if p.device.type != "meta"]
            row.update(
                trainable=counts["total"],
                connector=counts["connector"],
                lora=counts["lora"],
                other_trainable=counts["other"],
                ratio_to_emosllm=round(counts["total"] / EMOSLLM_TRAINABLE, 2),
                connector_parts=connector_parts,
                encoder_parameters=encoder,
                llm_parameters=llm,
                parameters_not_on_meta=off_meta,
            )
            del model
        except Exception as err:  # report, don't hide: the brief asks what fails on meta
            row["error"] = f"{type(err).__name__}: {err}"
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- main
def print_report(payload: dict, threads: int, args) -> None:
    g, bs = payload["generate_vs_label_logits"], payload["batch_vs_single"]
    lora, meta = payload["lora_training_step"], payload["emosllm_trainable_parameters"]
    n = args.num_clips
    print(
        f"\n{payload['model']}\n{n} clips ({payload['clip_seconds'][0]:.2f}-{payload['clip_seconds'][1]:.2f} s) "
        f"from {payload['clips_source']}; CPU fp32, {threads} threads, median of {args.repeats} "
        f"after {args.warmup} warm-up"
    )
    print(f"{'measurement':<58} {'median ms':>10} {'clips/s':>8} {'ratio':>6} {'of min':>6}  ratio is")

    def line(name, ms, ratio=None, ratio_min=None, meaning=""):
        ratios = f" {ratio:>6.2f} {ratio_min:>6.2f}  {meaning}" if ratio is not None else ""
        print(f"{name:<58} {ms:>10.1f} {n / ms * 1000:>8.2f}{ratios}")

    line(f"label_logits classifier, batch of {n}", g["label_logits_ms"])
    for r in g["generations"]:
        line(
            f"generate({r['max_new_tokens']} tokens) + parse, batch of {n}",
            r["generate_ms"],
            r["speedup_label_logits_over_generate"],
            r["speedup_of_min"],
            "generate / label_logits time",
        )
    for r in bs:
        line(f"label_logits batched, {r['variant']}", r["batched_ms"])
        line(
            f"label_logits {n} single calls, {r['variant']}",
            r["singles_ms"],
            r["throughput_ratio"],
            r["throughput_ratio_of_min"],
            "singles / batched time",
        )
    line(f"LoRA forward+backward, batch of {n} (asr+ser)", lora["forward_backward_ms"])
    print("(ratio: of the medians; of min: of the fastest passes, the least disturbed by other jobs)")
    print(f"\nargmax(label_logits): {g['argmax_labels']}")
    for r in g["generations"]:
        print(
            f"agreement with parsed generate({r['max_new_tokens']} tokens): {r['agreement']:.2f} "
            f"({r['answers_naming_a_label']:.2f} of the answers name a label; the others parse to 'neutral')"
        )
        print(f"  parsed: {r['parsed_labels']}; first answer: {r['answers'][0]!r}")
    print(
        "  the connector is untrained, so both predictions are arbitrary: a consistency figure, not accuracy"
    )
    print(
        f"  label_logits vs the LM's next-token log-prob (one-token labels): "
        f"max |delta| {g['max_abs_diff_one_token_label_vs_lm_logprob']:.2e}"
    )
    for r in bs:
        flag = "" if r["max_abs_delta_prob"] <= 1e-4 else "  ABOVE 1e-4"
        print(
            f"batched vs single ({r['variant']}; text tokens {r['text_tokens_min_max']}, mel frames "
            f"{r['mel_frames_min_max']}): max |delta prob| {r['max_abs_delta_prob']:.2e}, max |delta logit| "
            f"{r['max_abs_delta_logit']:.2e}, same argmax {r['same_argmax']}{flag}"
        )
    reset = "peak reset before the steps" if lora["peak_reset_before"] else "peak NOT reset: includes loading"
    print(
        f"LoRA step: {lora['trainable_summary']} (connector {lora['trainable_connector']:,}, LoRA "
        f"{lora['trainable_lora']:,}); ru_maxrss {lora['maxrss_before_mib']:.0f} -> {lora['maxrss_after_mib']:.0f} MiB "
        f"(+{lora['peak_increase_mib']:.0f}; {reset}); batch {lora['batch_tokens']} tokens"
    )
    print(f"\nEmoSLLM configuration on the meta device (paper: {EMOSLLM_TRAINABLE / 1e6:.1f} M trainable)")
    print(f"{'variant':<52} {'trainable':>11} {'connector':>11} {'LoRA':>10} {'x paper':>8}")
    for r in meta:
        if "error" in r:
            print(f"{r['variant']:<52} FAILED: {r['error']}")
            continue
        print(
            f"{r['variant']:<52} {r['trainable'] / 1e6:>10.2f}M {r['connector'] / 1e6:>10.2f}M "
            f"{r['lora'] / 1e6:>9.2f}M {r['ratio_to_emosllm']:>8.2f}"
        )
    first = next((r for r in meta if "error" not in r), None)
    if first:
        print(
            f"  (frozen: WavLM Large {first['encoder_parameters'] / 1e6:.1f} M, Llama 3.2 3B "
            f"{first['llm_parameters'] / 1e9:.3f} B; parameters not on meta: {first['parameters_not_on_meta']})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per case (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per case first")
    parser.add_argument("--num_clips", type=int, default=8, help="clips = the batch size")
    parser.add_argument("--max_new_tokens", type=int, default=8, help="generate()'s answer length")
    parser.add_argument(
        "--long_max_new_tokens", type=int, default=32, help="a second, longer answer length (0: skip)"
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        default=None,
        help="a load_from_disk folder with a 'test' split (default: the embedded synthetic corpus)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--output_json", type=Path, default=Path("benchmarks/results/audio_llm_speed.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads, load_start = torch.get_num_threads(), os.getloadavg()[0]

    if args.dataset is None:
        from serhub.recipes.data import embedded_dataset_path

        args.dataset = embedded_dataset_path()
    clips, labels, transcripts, source = load_clips(args.dataset, args.num_clips)
    with tempfile.TemporaryDirectory() as tmp:
        model, processor, clf, model_source = build_models(tmp)
    print(f"[bench] generate vs label_logits ({model_source})", file=sys.stderr)
    generation = bench_generate_vs_logits(model, processor, clf, clips, args)
    print("[bench] batched vs single", file=sys.stderr)
    batching = bench_batch_vs_single(clf, processor, clips, args)
    del clf
    gc.collect()
    print("[bench] LoRA training step", file=sys.stderr)
    lora = bench_lora_step(model, processor, clips, labels, transcripts, args)
    del model
    gc.collect()
    print("[bench] EmoSLLM parameter count (meta device)", file=sys.stderr)
    emosllm = count_emosllm()
    load_end = os.getloadavg()[0]

    seconds = [len(c) / SR for c in clips]
    payload = dict(
        args={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        environment=dict(
            torch=torch.__version__,
            transformers=transformers.__version__,
            device="cpu",
            num_threads=threads,
            cpu_count=os.cpu_count(),
            platform=platform.platform(),
            load_average_1m=[load_start, load_end],
        ),
        model=f"whisper tiny.en -> query_pooling (32 queries, untrained) -> SmolLM2-135M-Instruct ({model_source})",
        clips_source=source,
        clip_seconds=[round(min(seconds), 2), round(max(seconds), 2)],
        note="untrained connector: predictions are arbitrary; agreement is a consistency figure, not accuracy",
        generate_vs_label_logits=generation,
        batch_vs_single=batching,
        lora_training_step=lora,
        emosllm_trainable_parameters=emosllm,
        emosllm_assumptions=dict(
            paper_trainable=EMOSLLM_TRAINABLE,
            audio_config=WAVLM_LARGE,
            text_config=LLAMA_32_3B,
            audio_llm=EMOSLLM,
            lora_targets=AudioLLMConfig().lora_target_modules,
        ),
    )
    print_report(payload, threads, args)
    # The 1-min load average counts this run's own threads by the end; more means other jobs competed.
    if load_start > 1 or load_end > threads + 1:
        print(f"WARNING: load average {load_start:.1f} -> {load_end:.1f}: CPU shared with other jobs, noisy")
    write_json(args.output_json, payload, portable_paths=True)
    print(f"wrote {args.output_json}")


if __name__ == "__main__":
    main()
