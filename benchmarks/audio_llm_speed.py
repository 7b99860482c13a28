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
from audio_llm_speed_emosllm import EMOSLLM, EMOSLLM_TRAINABLE, LLAMA_32_3B, WAVLM_LARGE, count_emosllm
from audio_llm_speed_measure import (
    count_trainable,
    current_rss_mib,
    max_rss_mib,
    median,
    reset_peak_rss,
    time_ms,
)
from audio_llm_speed_report import print_report
from serhub.modeling import AudioLLMConfig, AudioLLMForAudioClassification, AudioLLMForConditionalGeneration
from serhub.modeling.offline_assets import resolve_pretrained
from serhub.recipes.reporting import write_json

warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # peft calls a deprecated name

LABELS = ["neutral", "happy", "sad", "angry", "fear", "surprise"]
SR = 16000
ASTERISK = "/usr/share/asterisk/sounds/en/*.wav"


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


def parse_label(text: str, labels: list[str], fallback: str = "neutral") -> str | None:
    """The label whose name appears first in ``text`` (at a word start), else ``fallback``."""
    pattern = r"\b(" + "|".join(re.escape(label) for label in labels) + ")"
    match = re.search(pattern, text, flags=re.IGNORECASE)
    return match.group(1).lower() if match else fallback


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


# ---------------------------------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
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
    return parser.parse_args()


def run_sections(args, clips, labels, transcripts) -> tuple[str, dict]:
    """The four measurements, in the order the models allow: enable_lora() changes the generator in
    place, so the LoRA step follows the inference ones; each model goes as soon as no section needs it."""
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
    return model_source, dict(
        generate_vs_label_logits=generation,
        batch_vs_single=batching,
        lora_training_step=lora,
        emosllm_trainable_parameters=emosllm,
    )


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads, load_start = torch.get_num_threads(), os.getloadavg()[0]

    if args.dataset is None:
        from serhub.recipes.data import embedded_dataset_path

        args.dataset = embedded_dataset_path()
    clips, labels, transcripts, source = load_clips(args.dataset, args.num_clips)
    model_source, sections = run_sections(args, clips, labels, transcripts)
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
        **sections,
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
