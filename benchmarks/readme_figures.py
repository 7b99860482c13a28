"""The README's figures, generated from finished runs' own eval_results.json, so text and runs cannot drift.

    # after the embedded defaults ran (accelerate launch recipes/<recipe>.py --output_dir outputs/<recipe>)
    python benchmarks/readme_figures.py --collect ssl_classifier=outputs/ssl_classifier \\
        whisper_llm=outputs/whisper_llm emosllm=outputs/emosllm
    python benchmarks/readme_figures.py --render     # only rewrite the README from defaults.json

``--collect RECIPE=FOLDER ...`` reads each run's eval_results.json (its classifier's test figures
through ``reporting.read_macro_f1`` / ``read_test_metrics``, and its ``run`` record: wall time, peak
RSS, threads, commit, date) and stores one record per recipe in ``benchmarks/results/defaults.json``
(the other recipes' records stay). A run made before the run record existed is collected with its
measurements given by hand, ``--set emosllm.wall_s=951 emosllm.peak_rss_gb=4.9``; the README says so.

The README is then rewritten between its markers, from defaults.json only: the "Other recipes" table
(``<!-- figures:recipes:start -->`` ... ``end``) and the main job's figures (``figures:emosllm``). A
recipe without a record keeps the fixed text of ``FIXED`` below, which says it is from an earlier
version. tests/test_readme_figures.py fails when the README's blocks differ from ``render()``.
"""

from __future__ import annotations

import argparse
import json
import re
import textwrap
from pathlib import Path

from serhub.modeling.file_utils import atomic_write
from serhub.recipes.reporting import MACRO_F1_SOURCES, read_macro_f1, read_test_metrics, write_json

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DEFAULTS = REPO / "benchmarks" / "results" / "defaults.json"
RUN_FIELDS = ("wall_s", "peak_rss_gb", "torch_threads", "cpu_count", "world_size", "commit", "date")

# the README's recipe table, in order: the script and what it does (fixed), then its figures
TABLE = (
    ("emosllm", "EmoSLLM curriculum (connector + LoRA LLM, 3 phases)"),
    ("ssl_classifier", "speech encoder + weighted layer sum + attentive statistics pooling (ABHINAYA S1, "
                       "MSP-Podcast baseline)"),
    ("whisper_llm", "THAU-UPM Whisper-LLM: frozen encoder and LLM, trained projector (on standardised frames), label-logit classification, "
                    "weighted CE; `--num_folds 5` for stratified cross-validation"),
    ("graph_fusion", "graph fusion: Whisper tiny.en + Whisper base, MiniLM over the transcript, swift-f0 pitch bins, "
                     "a log-mel CNN; GATv2 / cross-attention / concat; writes the ablation table"),
    ("text_llm", "THAU-UPM's text model: SmolLM2-135M-Instruct + LoRA fine-tuned with TRL's `SFTTrainer` (loss on "
                 "the answer only), labels scored by likelihood; `--config recipes/configs/text_llm/abhinaya_t2.yaml` "
                 "= ABHINAYA T2"),
    ("zero_shot", "ABHINAYA T1: an instruction-tuned LLM (or an audio-LLM) scores the labels with no training"),
    ("ensemble", "every member and combination of trained models, hard vote (tie-breaker) and soft vote; saves the "
                 "best on validation"),
    ("descriptors", "explainable SER with speech descriptors: `vae_ib` content + descriptor branches, alternating "
                    "stages, \"\\| ASR: … \\| Descriptors: … \\| Emotion: …\" answers"),
    ("qwen2_audio_lora", "THAU-UPM task 2: Qwen2-Audio + LoRA with TRL's `SFTTrainer`, answers parsed (fallback "
                         "\"neutral\") and label scoring"),
    ("sweep", "a grid over the arguments of any recipe above (THAU's LoRA rank / alpha / learning rate), resumable, "
              "`sweep.csv` + `sweep.png`, the best on validation named (`qwen2_audio_lora` has no validation "
              "figure: tabulated only)"),
)  # fmt: skip
# the figures cell of a recipe with no record in defaults.json (measured by hand on an earlier version)
FIXED = {
    "emosllm": "the main job above: 10:18, test macro-F1 0.50 (0.41–0.58) (an earlier version)",
    "ssl_classifier": "2:38 with the weights converted, peak RSS 2.6 GB; test macro-F1 0.52 (95 % CI 0.45–0.58), per "
                      "test voice 0.50 / 0.50 / 0.57, calibrated (T 0.98, test ECE 0.077); with `--frame_norm none` "
                      "(the model before frame standardisation) 0.50 (0.43–0.57) (an earlier version)",
    "whisper_llm": "~6 min with the weights converted; test macro-F1 0.48 (95 % CI 0.40–0.55) (an earlier version)",
    "graph_fusion": "9 min with the weights converted (8:58 measured, 2.3 GB); test macro-F1 0.71 (95 % CI 0.65–0.76) "
                    "for the fused GAT model (an earlier version)",
    "text_llm": "6 min 12 s; test macro-F1 0.53 (0.44–0.60) from the corpus's transcripts (0.41 from Whisper tiny.en's); "
                "ABHINAYA T2 5:40, 0.54; Gemma-3-270M: 9:03, 0.69 (0.61–0.75) (an earlier version)",
    "zero_shot": "3 min 24 s; test macro-F1 0.15 with SmolLM2-135M (chance: a 135M model does not do this zero-shot) "
                 "(an earlier version)",
    "ensemble": "22 min beside other jobs (each member runs on 480 clips, plus Whisper transcripts); the three "
                "members' hard vote, chosen on validation (0.64): test macro-F1 0.60 (0.52–0.66), UA 0.60; best "
                "member (the speech classifier) 0.53; members: the v1 defaults of an earlier version (the run's own "
                "`ensemble_table.csv`, 2026-12-06); not re-run on v2 yet: its Whisper pass looped on v2's "
                "silences (now capped)",
    "descriptors": "20:20, 8.5 GB; does not learn from the audio yet: test macro-F1 0.10 (0.07–0.13) with its own "
                   "descriptors, 0.54 given the true ones (an earlier version)",
    "qwen2_audio_lora": "no offline weights: needs `--model_name_or_path` (GPU config provided)",
    "sweep": "one recipe run per point",
}  # fmt: skip
# fixed words after a recipe's generated figures: what the figure is, or figures of other settings
NOTES = {
    "graph_fusion": "for the fused GAT model (the ablation table is in the run's folder)",
    "descriptors": "it does not yet hear the descriptors in the audio",
    "text_llm": "from the corpus's transcripts of sentences it never saw; an earlier version on v1: 0.41 from "
                "Whisper tiny.en's transcripts, ABHINAYA T2 5:40 and 0.54, Gemma-3-270M 9:03 and 0.69 (0.61–0.75)",
    "zero_shot": "with SmolLM2-135M (chance: a 135M model does not do this zero-shot)",
}  # fmt: skip
MARKERS = ("recipes", "emosllm", "ensemble")


# ----------------------------------------------------------------------------------------- collect
def extras(recipe: str, results: dict) -> dict:
    """The figures beside a recipe's classifier that the README states (emosllm's other readouts and
    WER by phase; ssl_classifier's calibration)."""
    if recipe == "emosllm":
        return {
            "transcript_conditioned": (results.get("transcript_conditioned") or {}).get("macro_f1"),
            "text_only": (results.get("text_only") or {}).get("macro_f1"),
            "wer_by_phase": results.get("wer_by_phase"),
            "wer_heldout_asr": results.get("wer_heldout_asr"),
        }
    if recipe == "descriptors":
        return {
            mode: [r["macro_f1"], r.get("macro_f1_ci_low"), r.get("macro_f1_ci_high")]
            for mode in ("descriptor_conditioned", "ground_truth_descriptors")
            if isinstance(r := results.get(mode), dict) and "macro_f1" in r
        }
    if recipe == "ensemble" and results.get("chosen_on_validation"):
        rows = results.get("table") or []
        best = next((r for r in rows if r.get("members") == results.get("best_member_on_validation")), {})
        chosen = results["chosen_on_validation"]
        names = {m["name"] for m in results.get("members") or []}
        shown = [  # each member alone, and all of them by each vote (the README's table)
            {k: r.get(k) for k in ("members", "voting", "test_macro_f1", "test_macro_f1_ci")}
            for r in rows
            if r.get("voting") == "single" or set(str(r.get("members")).split("+")) == names
        ]
        return {
            "table": shown,
            "tie_breaker": results.get("tie_breaker"),
            "chosen": f"{chosen['members'].replace('+', ' + ')} ({chosen['voting']} vote)",
            "best_member": [
                best.get("members"),
                best.get("test_macro_f1"),
                *(best.get("test_macro_f1_ci") or [None, None]),
            ],
        }
    if recipe == "ssl_classifier" and "calibration" in results:
        calibration = results["calibration"]
        test = next((c for s, c in calibration.items() if isinstance(c, dict) and s != "validation"), {})
        return {"temperature": calibration.get("temperature"), "test_ece": test.get("ece_after")}
    return {}


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def collect(runs: dict[str, str | Path], given: dict[str, dict] | None = None) -> dict[str, dict]:
    """One record per recipe from its run folder; ``given[recipe]`` run fields measured outside the run
    (a run without the run record, or a corrected figure)."""
    records = {}
    for recipe, folder in runs.items():
        folder = Path(folder)
        scores = read_macro_f1(folder, recipe)
        if scores is None:
            raise ValueError(f"{folder} holds no eval_results.json: is the {recipe} run finished?")
        test = read_test_metrics(folder, recipe)
        results = json.loads((folder / "eval_results.json").read_text())
        run = {k: (results.get("run") or {}).get(k) for k in RUN_FIELDS}
        by_hand = (given or {}).get(recipe, {})
        unknown = set(by_hand) - set(RUN_FIELDS)
        if unknown:
            raise ValueError(
                f"--set {recipe}.{sorted(unknown)[0]}: not a run field; the fields are {RUN_FIELDS}"
            )
        run.update(by_hand)
        speakers = test.get("per_speaker_macro_f1")
        records[recipe] = {
            "folder": folder.name,  # where it ran, by name (no machine path in the committed file)
            "test_macro_f1": scores["test_macro_f1"],
            "test_ci": list(scores["test_ci"]) if scores["test_ci"] else None,
            "validation_macro_f1": scores["validation_macro_f1"],
            "unweighted_accuracy": test.get("unweighted_accuracy"),
            "per_speaker_macro_f1": dict(sorted(speakers.items())) if speakers else None,
            "per_speaker_chance_lowest": (test.get("per_speaker_chance") or {}).get("chance_lowest"),
            "run": run,
            "run_given": sorted(by_hand),
            "extras": extras(recipe, results),
            "heldout": heldout_figures(results),
        }
    return records


def heldout_figures(results: dict) -> dict | None:
    """Macro-F1 and its interval on each held-out condition (``--heldout_eval``), or None."""
    scored = {k: v for k, v in (results.get("heldout") or {}).items() if isinstance(v, dict)}
    return {
        condition: [v["macro_f1"], v.get("macro_f1_ci_low"), v.get("macro_f1_ci_high")]
        for condition, v in scored.items()
    } or None


def heldout_words(record: dict) -> str:
    """``; unseen voices and sentences 0.04 (0.03–0.06), telephone + 15 dB noise 0.07 (...)``"""
    heldout = record.get("heldout") or {}
    words = {
        "heldout_voices": "unseen voices and sentences",
        "heldout_voices_telephone": "telephone + 15 dB noise",
    }
    parts = [f"{words.get(k, k)} {f1(v[0], v[1:] if v[1] is not None else None)}" for k, v in heldout.items()]
    return ("; " + ", ".join(parts)) if parts else ""


# ------------------------------------------------------------------------------------------ render
def wall(seconds: float | None) -> str:
    if seconds is None:
        return "wall time not recorded"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


def f1(value: float, ci: list | None = None, label: str = "") -> str:
    return f"{value:.2f}" + (f" ({label}{ci[0]:.2f}–{ci[1]:.2f})" if ci else "")


def run_words(record: dict) -> str:
    """``15:51 wall, peak RSS 4.9 GB, 2 threads``, and where those figures came from."""
    run = record["run"]
    words = [f"{wall(run['wall_s'])} wall" if run["wall_s"] is not None else wall(None)]
    if run.get("peak_rss_gb") is not None:
        words.append(f"peak RSS {run['peak_rss_gb']:.1f} GB")
    if run.get("torch_threads"):
        words.append(f"{run['torch_threads']} threads")
    if run.get("world_size", 1) not in (None, 1):
        words.append(f"{run['world_size']} processes")
    text = ", ".join(words)
    if {"wall_s", "peak_rss_gb", "torch_threads"} & set(record["run_given"]):
        text += " (measured outside the run record: /usr/bin/time -v)"
    return text


def speaker_words(per_speaker: dict[str, float], chance_lowest: float | None = None) -> str:
    """Each voice's macro-F1 when there are a few ("0.50 / 0.57"); past four, the median and the range
    over the N voices (a voice of 12 clips is a noisy figure), and what the lowest would be by chance
    when the run measured it (``per_speaker_chance_lowest``)."""
    values = sorted(per_speaker.values())
    if len(values) <= 4:
        return " / ".join(f"{v:.2f}" for v in per_speaker.values())
    middle = len(values) // 2
    median = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
    chance = (
        f" ({chance_lowest:.2f} expected were every voice heard alike)" if chance_lowest is not None else ""
    )
    return f"({len(values)}) median {median:.2f}, lowest {values[0]:.2f}{chance}, highest {values[-1]:.2f}"


def provenance(record: dict) -> str:
    run = record["run"]
    date = (run.get("date") or "")[:10]
    return ", ".join(x for x in (f"commit {run['commit']}" if run.get("commit") else "", date) if x)


def figures_cell(recipe: str, record: dict | None) -> str:
    if record is None:
        return FIXED[recipe]
    text = f"{run_words(record)}; test macro-F1 {f1(record['test_macro_f1'], record['test_ci'], '95 % CI ')}"
    if record.get("unweighted_accuracy") is not None:
        text += f", UA {record['unweighted_accuracy']:.2f}"
    if record.get("per_speaker_macro_f1"):
        text += ", per test voice " + speaker_words(
            record["per_speaker_macro_f1"], record.get("per_speaker_chance_lowest")
        )
    extra = record.get("extras") or {}
    if recipe == "descriptors" and extra:
        text = text.replace("test macro-F1", "test macro-F1 in `label_logits`", 1)
        words = {
            "descriptor_conditioned": "with its own descriptors (descriptor_conditioned)",
            "ground_truth_descriptors": "given the true descriptors",
        }
        text += "; " + ", ".join(
            f"{f1(v[0], v[1:] if v[1] is not None else None)} {words[k]}" for k, v in extra.items()
        )
    if recipe == "ensemble" and extra.get("chosen"):
        name, value, low, high = extra["best_member"]
        text = text.replace("test macro-F1", f"{extra['chosen']}, chosen on validation: test macro-F1", 1)
        text += f"; the best member alone ({name}) {f1(value, [low, high] if low is not None else None)}"
    text += heldout_words(record)
    if extra.get("temperature") is not None:
        text += f"; calibrated (T {extra['temperature']:.2f}, test ECE {extra['test_ece']:.3f})"
    if recipe in NOTES:
        text += f"; {NOTES[recipe]}"
    if recipe == "emosllm":
        text = f"the main job above: {text}"
    when = provenance(record)
    return text + (f" [{when}]" if when else "")


def render_recipes(records: dict) -> str:
    lines = ["| recipe | what | embedded default on 2 CPU cores |", "|---|---|---|"]
    for recipe, what in TABLE:
        lines.append(f"| `recipes/{recipe}.py` | {what} | {figures_cell(recipe, records.get(recipe))} |")
    return "\n\n" + "\n".join(lines) + "\n\n"


def render_emosllm(records: dict) -> str:
    record = records.get("emosllm")
    if record is None:
        return (
            "\n(no run collected: run the default and `benchmarks/readme_figures.py --collect emosllm=...`)"
        )
    extra = record["extras"]
    speakers = speaker_words(
        record.get("per_speaker_macro_f1") or {}, record.get("per_speaker_chance_lowest")
    )
    text = (
        f"{run_words(record)}; test macro-F1 **{f1(record['test_macro_f1'], record['test_ci'], '95 % CI ')}** in "
        f"`label_logits` (UA {record['unweighted_accuracy']:.2f}"
        + (f"; per held-out test speaker {speakers}" if speakers else "")
        + ")"
        + heldout_words(record)
    )
    if extra.get("transcript_conditioned") is not None:
        text += f"; {extra['transcript_conditioned']:.2f} in `transcript_conditioned`"
    if extra.get("text_only") is not None:
        text += f" and {extra['text_only']:.2f} from the transcript alone"
    phases = extra.get("wer_by_phase") or {}
    if {"before_training", "after_phase1", "after_phase2", "after_phase3"} <= set(phases):
        text += (
            f". Held-out WER on the telephone prompts: {phases['before_training']:.2f} before training → "
            f"{phases['after_phase1']:.2f} / {phases['after_phase2']:.2f} after phases 1 / 2 → "
            f"{phases['after_phase3']:.2f} after phase 3"
        )
    when = provenance(record)
    text += f" [{when}]." if when else "."
    return "\n" + textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False)


def render_ensemble(records: dict) -> str:
    """The ensemble's members alone and all of them together by each vote, the saved one in bold."""
    record = records.get("ensemble")
    table = ((record or {}).get("extras") or {}).get("table")
    if not table:
        return "\n\n(no run collected: run the default and `benchmarks/readme_figures.py --collect ensemble=...`)\n\n"
    chosen = record["extras"]["chosen"]
    lines = ["| members | vote | test macro-F1 (95 % CI) |", "|---|---|---|"]
    for row in table:
        ci = row.get("test_macro_f1_ci")
        score = f"{row['test_macro_f1']:.3f}" + (f" ({ci[0]:.3f}–{ci[1]:.3f})" if ci else "")
        if row["voting"] == "single":
            lines.append(f"| {row['members']} alone | – | {score} |")
            continue
        vote = row["voting"] + (
            f" (tie-breaker: {record['extras']['tie_breaker']})" if row["voting"] == "hard" else ""
        )
        members = f"all {len(row['members'].split('+'))}"
        if chosen == f"{row['members'].replace('+', ' + ')} ({row['voting']} vote)":
            lines.append(f"| **{members} (chosen on validation, saved)** | **{vote}** | **{score}** |")
        else:
            lines.append(f"| {members} | {vote} | {score} |")
    when = provenance(record)
    return "\n\n" + "\n".join(lines) + (f"\n\n[{when}]" if when else "") + "\n\n"


def render(defaults: dict) -> dict[str, str]:
    """Each marked README block's text, from defaults.json's records."""
    records = defaults.get("recipes", {})
    return {
        "recipes": render_recipes(records),
        "emosllm": render_emosllm(records),
        "ensemble": render_ensemble(records),
    }


def marked(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- figures:{name}:start -->)(.*?)(<!-- figures:{name}:end -->)", re.DOTALL)


def readme_blocks(text: str) -> dict[str, str]:
    """The README's marked blocks as they stand."""
    blocks = {}
    for name in MARKERS:
        match = marked(name).search(text)
        if match is None:
            raise ValueError(f"README.md has no <!-- figures:{name}:start --> ... end markers")
        blocks[name] = match.group(2)
    return blocks


def rewrite(text: str, blocks: dict[str, str]) -> str:
    for name, block in blocks.items():
        readme_blocks(text)  # every marker is there
        text = marked(name).sub(lambda m, b=block: m.group(1) + b + m.group(3), text)
    return text


def load_defaults(path: Path = DEFAULTS) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {"recipes": {}}


# -------------------------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collect", nargs="+", default=[], metavar="RECIPE=FOLDER")
    parser.add_argument("--set", nargs="+", default=[], metavar="RECIPE.FIELD=VALUE",
                        help=f"a run field measured outside the run ({', '.join(RUN_FIELDS)})")  # fmt: skip
    parser.add_argument("--render", action="store_true", help="rewrite the README (also after --collect)")
    parser.add_argument("--defaults", default=str(DEFAULTS))
    parser.add_argument("--readme", default=str(README))
    args = parser.parse_args(argv)
    runs, given = {}, {}
    for entry in args.collect:
        recipe, sep, folder = entry.partition("=")
        if not sep or recipe not in MACRO_F1_SOURCES:
            raise ValueError(
                f"--collect {entry!r}: give RECIPE=FOLDER, RECIPE one of {sorted(MACRO_F1_SOURCES)}"
            )
        runs[recipe] = folder
    for entry in args.set:
        key, sep, value = entry.partition("=")
        recipe, dot, field = key.partition(".")
        if not sep or not dot or recipe not in runs:
            raise ValueError(f"--set {entry!r}: give RECIPE.FIELD=VALUE for a recipe of --collect")
        given.setdefault(recipe, {})[field] = parse_value(value)
    defaults = load_defaults(Path(args.defaults))
    if runs:
        defaults["recipes"] = {**defaults.get("recipes", {}), **collect(runs, given)}
        write_json(args.defaults, defaults, portable_paths=True)
    if runs or args.render:
        readme = Path(args.readme)
        text = rewrite(readme.read_text(), render(defaults))
        atomic_write(readme, lambda tmp: tmp.write_text(text))
        what = f"the records of {', '.join(runs)} in {args.defaults} and " if runs else ""
        print(f"wrote {what}the figures of {readme}")
    return defaults


if __name__ == "__main__":
    main()
