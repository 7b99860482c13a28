"""audio_llm_speed's measuring tools: interleaved wall times, peak and current RSS, trainable parameters."""

from __future__ import annotations

import os
import resource
import statistics
import time

import torch


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
