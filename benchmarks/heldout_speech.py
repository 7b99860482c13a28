"""Trained serhub models on speech from voices AND sentences that no split of the corpus holds.

    HF_HUB_OFFLINE=1 python benchmarks/heldout_speech.py \\
        --models outputs/emosllm outputs/whisper_llm outputs/ssl_classifier [--clips_per_speaker 30]
    HF_HUB_OFFLINE=1 python benchmarks/heldout_speech.py --version 2 --models outputs/ssl_classifier-v2 \\
        [--dataset data/synthetic_emotions_v2_heldout]

Version 1 (the default, for models trained on ``synthetic_emotions``): the corpus's test split
already holds out its speakers, but its sentences are the training banks'. This check synthesises a
new set with the corpus's own emotion model (``synthetic_emotions.plan_clips``: the same prosody per
class, intensities, jitter and speaker baselines) from six espeak-ng voice x variant pairs that are
not among the corpus's 15 and sentences that are in none of its banks (half of the non-neutral clips
read emotional words, as in the corpus). Those six voices are *training* voices of version 2, so
``--version 2`` scores on version 2's ``heldout`` split instead: the voices (variants and their
families) and sentence clauses that no split of ``synthetic_emotions_v2`` uses, with its random
level and silences; built here (``--clips_per_speaker`` clips per voice, ``--corpus_seed`` must be
the corpus's seed) or read from ``--dataset`` (``python -m serhub.datasets_scripts.synthetic_emotions_v2
--splits heldout``). It is unseen by models of either version.

Every model runs through ``pipeline("audio-classification")``, as a user runs it, except an
ssl_classifier trained with ``--speaker_norm`` (the pipeline does not normalise speakers): its
encoder frames are standardised with each held-out speaker's statistics, transductively, as the
recipe scores its test split. Prints macro-F1 with
its bootstrap 95 % interval and each speaker's macro-F1 per model; writes them as JSON to
--output_json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from serhub.datasets_scripts import synthetic_emotions as corpus
from serhub.datasets_scripts import synthetic_emotions_v2 as corpus_v2
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics, per_speaker_macro_f1
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


def heldout_clips_v2(clips_per_voice: int, corpus_seed: int, dataset: Path | None = None):
    """(audio arrays at 16 kHz, labels, speaker names, texts) of version 2's ``heldout`` split, read
    from ``dataset`` or synthesised (voices and sentences of ``corpus_seed``'s corpus plan)."""
    import datasets

    if dataset is not None:
        split = datasets.load_from_disk(str(dataset))["heldout"]
    else:
        split = corpus_v2.build(clips_per_voice, seed=corpus_seed, splits=("heldout",))["heldout"]
    split = split.cast_column("audio", datasets.Audio(sampling_rate=16000))
    names = split.features["emotion"].names
    audio = [np.asarray(a["array"], dtype=np.float32) for a in split["audio"]]
    return audio, [names[e] for e in split["emotion"]], list(split["speaker_id"]), list(split["transcript"])


def speaker_normalised_predictions(model_dir: str, audio, speakers, batch_size: int):
    """Labels from an ssl_classifier trained with ``--speaker_norm``: its encoder's frames standardised
    with each held-out speaker's statistics (transductive, as the recipe scores its test split), which
    the pipeline does not do. Returns (predicted labels, the model's label names)."""
    import torch
    from serhub.modeling import SpeechEmotionFeatureExtractor, SpeechEmotionForAudioClassification
    from serhub.recipes.ssl_classifier import CachedEncoderCollator, speaker_statistics

    model = SpeechEmotionForAudioClassification.from_pretrained(model_dir).eval()
    feature_extractor = SpeechEmotionFeatureExtractor.from_pretrained(model_dir)
    rows = []
    for i in range(0, len(audio), batch_size):
        inputs = feature_extractor(audio[i : i + batch_size], sampling_rate=16000, return_tensors="pt")
        main = inputs.get("input_values", inputs.get("input_features"))
        with torch.no_grad():
            states, mask = model.encode(main, inputs["attention_mask"])  # B, L+1, T', D
        rows += [
            {
                "encoder_hidden_states": states[k][:, mask[k]].transpose(0, 1).numpy(),
                "speaker_id": s,
                "labels": 0,
            }
            for k, s in enumerate(speakers[i : i + batch_size])
        ]
    collator = CachedEncoderCollator((), "speaker", speaker_statistics(rows, "speaker_id"))
    names = list(model.config.id2label.values())
    predictions = []
    for i in range(0, len(rows), batch_size):
        batch = collator(rows[i : i + batch_size])
        with torch.no_grad():
            logits = model(
                encoder_hidden_states=batch["encoder_hidden_states"],
                encoder_attention_mask=batch["encoder_attention_mask"],
            ).logits
        predictions += [names[j] for j in logits.argmax(-1).tolist()]
    return predictions, names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["outputs/emosllm"], help="trained serhub model folders"
    )
    parser.add_argument(
        "--version",
        type=int,
        choices=(1, 2),
        default=1,
        help="1: six voices outside synthetic_emotions; 2: synthetic_emotions_v2's heldout split",
    )
    parser.add_argument(
        "--clips_per_speaker", type=int, default=30, help="per voice (version 2: 12 suggested)"
    )
    parser.add_argument("--seed", type=int, default=7, help="version 1's plan")
    parser.add_argument(
        "--corpus_seed", type=int, default=0, help="version 2: the seed the corpus was built with"
    )
    parser.add_argument("--dataset", type=Path, default=None, help="version 2: a built heldout split to read")
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
    if args.version == 2:
        audio, labels, speakers, _ = heldout_clips_v2(args.clips_per_speaker, args.corpus_seed, args.dataset)
    else:
        audio, labels, speakers, _ = heldout_clips(args.clips_per_speaker, args.seed)
    print(
        f"held-out set: {len(audio)} clips, {len(set(speakers))} voices, built in {time.time() - start:.0f} s"
    )
    results = {"version": args.version, "clips": len(audio), "speakers": sorted(set(speakers)), "models": {}}
    for model in args.models:
        start = time.time()
        config = json.loads((Path(model) / "config.json").read_text())
        if "speaker_normalization" in config:  # trained with --speaker_norm: the pipeline cannot serve it
            predictions, names = speaker_normalised_predictions(model, audio, speakers, args.batch_size)
        else:
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
