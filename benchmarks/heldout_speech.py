"""Trained serhub models on speech from voices AND sentences that no split of the corpus holds.

    HF_HUB_OFFLINE=1 python benchmarks/heldout_speech.py \\
        --models outputs/emosllm outputs/whisper_llm outputs/ssl_classifier [--clips_per_speaker 30]

The synthetic corpus's test split already holds out its speakers, but its sentences are the
training banks'. This check synthesises a new set with the corpus's own emotion model
(``synthetic_emotions.plan_clips``: the same prosody per class, intensities, jitter and speaker
baselines) from six espeak-ng voice x variant pairs that are not among the corpus's 15 and
sentences that are in none of its banks (half of the non-neutral clips read emotional words, as
in the corpus). Every model runs through ``pipeline("audio-classification")``, as a user runs it.
Prints macro-F1 with its bootstrap 95 % interval and each speaker's macro-F1 per model; writes them
as JSON to --output_json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from serhub.datasets_scripts import synthetic_emotions as corpus
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics
from serhub.recipes.audio_llm_common import per_speaker_macro_f1
from serhub.recipes.reporting import write_json

from serhub.loading import load_classifier

# voice x variant pairs the corpus does not use (its SPEAKERS): checked at start
HELDOUT_SPEAKERS = (
    ("en-us", "f4", "female"),
    ("en-gb-x-rp", "m2", "male"),
    ("en-029", "f5", "female"),
    ("en-gb-scotland", "m4", "male"),
    ("en-us-nyc", "f1", "female"),
    ("en-gb", "m8", "male"),
)
HELDOUT_NEUTRAL = (
    "The bus leaves from the north entrance at half past eight.",
    "Please bring two copies of the form to the front desk.",
    "The library closes early on public holidays.",
    "Our team meets in the second room on the left.",
    "The package should arrive sometime before the weekend.",
    "You can find the manual in the top drawer of the cabinet.",
)
HELDOUT_EMOTIONAL = {
    "happy": (
        "This is the best news I have heard all year!",
        "I am so glad we finally made it here together!",
        "We won the prize, I am over the moon!",
    ),
    "sad": (
        "I miss the old house so much, it feels empty now.",
        "Nobody came to the party, I waited all evening alone.",
        "It hurts to know we will never see her again.",
    ),
    "angry": (
        "I told you a hundred times not to touch my things!",
        "This is completely unacceptable, fix it right now!",
        "How dare you lie to my face like that!",
    ),
    "fear": (
        "Did you hear that noise? Someone is in the house.",
        "Please, I am scared, do not leave me here in the dark.",
        "The brakes are not working, we are going to crash!",
    ),
    "surprise": (
        "You painted the whole house in one day? Incredible!",
        "Wait, the concert is tonight? I had no idea!",
        "Is that really you? After all these years?",
    ),
}


def heldout_clips(clips_per_speaker: int, seed: int):
    """(audio arrays at 16 kHz, labels, speaker names, texts) of the held-out set."""
    used = {(voice, variant) for voice, variant, _ in corpus.SPEAKERS}
    clash = [s for s in HELDOUT_SPEAKERS if (s[0], s[1]) in used]
    banks = {*corpus.NEUTRAL_SENTENCES, *(t for b in corpus.EMOTIONAL_SENTENCES.values() for t in b)}
    repeated = [
        t for t in (*HELDOUT_NEUTRAL, *(t for b in HELDOUT_EMOTIONAL.values() for t in b)) if t in banks
    ]
    if clash or repeated:
        raise ValueError(f"held-out voices or sentences are in the corpus: {clash} {repeated}")
    specs = corpus.plan_clips(
        clips_per_speaker,
        seed=seed,
        speakers=HELDOUT_SPEAKERS,
        neutral_sentences=HELDOUT_NEUTRAL,
        emotional_sentences=HELDOUT_EMOTIONAL,
    )
    binary = corpus._espeak_binary()
    audio = [corpus.synthesize(spec, binary, speakers=HELDOUT_SPEAKERS) for spec in specs]  # 16 kHz
    names = [f"{v}+{var}" for v, var, _ in HELDOUT_SPEAKERS]
    return audio, [s.emotion for s in specs], [names[s.speaker] for s in specs], [s.text for s in specs]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["outputs/emosllm"], help="trained serhub model folders"
    )
    parser.add_argument("--clips_per_speaker", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--output_json", type=Path, default=Path("benchmarks/results/heldout_speech.json"))
    args = parser.parse_args(argv)
    missing = [m for m in args.models if not (Path(m) / "config.json").is_file()]
    if missing:
        parser.error(
            f"no trained model in {missing}: run its recipe first (e.g. accelerate launch recipes/emosllm.py)"
        )

    start = time.time()
    audio, labels, speakers, _ = heldout_clips(args.clips_per_speaker, args.seed)
    print(
        f"held-out set: {len(audio)} clips, {len(set(speakers))} voices, built in {time.time() - start:.0f} s"
    )
    results = {"clips": len(audio), "speakers": sorted(set(speakers)), "models": {}}
    for model in args.models:
        start = time.time()
        classifier = load_classifier(model)
        outputs = classifier(
            [{"raw": a, "sampling_rate": 16000} for a in audio], top_k=1, batch_size=args.batch_size
        )
        predictions = [o[0]["label"] for o in outputs]
        names = list(classifier.model.config.id2label.values())
        metrics = classification_metrics(predictions, labels, labels=names, bootstrap=args.bootstrap)
        metrics["per_speaker_macro_f1"] = per_speaker_macro_f1(predictions, labels, speakers, names)
        metrics["seconds"] = round(time.time() - start, 1)
        results["models"][model] = metrics
        per = ", ".join(f"{s} {v:.2f}" for s, v in metrics["per_speaker_macro_f1"].items())
        print(
            f"{model}: macro-F1 {metrics['macro_f1']:.3f} ({metrics['macro_f1_ci_low']:.3f}-"
            f"{metrics['macro_f1_ci_high']:.3f}), UA {metrics['unweighted_accuracy']:.3f}; per speaker: {per} "
            f"[{metrics['seconds']:.0f} s]"
        )
    write_json(args.output_json, results)
    print(f"written to {args.output_json}")


if __name__ == "__main__":
    main()
