"""audio_llm_speed's printed report: the timing table, then the consistency checks and the EmoSLLM counts
(the JSON holds every figure; this is the summary to read)."""

from __future__ import annotations

from audio_llm_speed_emosllm import EMOSLLM_TRAINABLE


def print_report(payload: dict, threads: int, args) -> None:
    print_timings(payload, threads, args)
    print_consistency(payload)
    print_emosllm(payload["emosllm_trainable_parameters"])


def print_timings(payload: dict, threads: int, args) -> None:
    """The table: each measurement's median time and throughput, with the ratio it is compared by."""
    g, bs = payload["generate_vs_label_logits"], payload["batch_vs_single"]
    lora = payload["lora_training_step"]
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


def print_consistency(payload: dict) -> None:
    """Whether the fast paths agree with the slow ones: argmax vs parsed answers, batched vs single."""
    g, bs = payload["generate_vs_label_logits"], payload["batch_vs_single"]
    lora = payload["lora_training_step"]
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


def print_emosllm(meta: list[dict]) -> None:
    """count_emosllm's rows next to the paper's trainable-parameter figure."""
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
