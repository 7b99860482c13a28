"""How much emotion a few measured prosody numbers carry, per clip and relative to the speaker.

For every clip of synthetic_emotions_v2 (train / validation / test) and of the held-out voices and
sentences (clean, and telephone band + 15 dB noise: ``serhub.heldout``), ten numbers are measured from
the audio alone: F0 (swift-f0, ``modeling.prosody.track_pitch``) median, 10-90 % and 5-95 % spread,
interquartile range, standard deviation, mean frame-to-frame change and slope, all in semitones; the
voiced share of frames, voiced stretches per second and seconds of active speech. A gradient-boosted
classifier (class-balanced) is trained on the training split and scored on the others, twice:

- ``per clip``: the numbers as measured (what a model scoring one clip can use);
- ``relative to the speaker``: each number minus its speaker's mean over that speaker's clips in the
  split (the transductive protocol of speaker-normalised SER; in use, an enrolled reference).

The planned prosody (``benchmarks/emotion_ceiling.py``) bounds both.

With ``--model DIR`` (a trained speech classifier, ``recipes/ssl_classifier.py``), the question is
whether the numbers add to what its encoder already gives, per clip: a logistic regression
(standardised inputs, class-balanced, its strength chosen on the validation split) on the model's
pooled vector alone and on the pooled vector with the ten numbers beside it, both trained on the
training split; the model's own predictions are scored beside them.

With ``--model DIR --enroll_per_speaker K`` every voice is enrolled on K of its clips (neutral ones
first, as ``serhub evaluate --enroll_per_speaker`` does; in training too, each training voice on its
own K), the figures are of the other clips only, and two views relative to the enrolled reference are
added: the ten numbers minus their mean over the voice's enrolled clips (gradient-boosted), and that
beside the model's pooled vector reduced to 16 principal components (gradient-boosted, and a one-layer
MLP); per-voice macro-F1 (median, lowest) for every view.

    python benchmarks/measured_prosody.py --output_json benchmarks/results/measured_prosody.json
    python benchmarks/measured_prosody.py --model outputs/ssl_classifier \
        --output_json benchmarks/results/measured_prosody_with_encoder.json
    python benchmarks/measured_prosody.py --model outputs/ssl_classifier --enroll_per_speaker 2 \
        --output_json benchmarks/results/measured_prosody_enrolled.json

With ``--scores_of DIR [DIR ...] --enroll_per_speaker K`` (any models the pipeline loads: the audio-LLMs
too), each model's class log-probabilities per clip, alone and beside the ten numbers relative to the
enrolled reference (gradient-boosted, trained on the training split): a late fusion of a model with
the speaker's reference, scored on the clips that enrolled nothing.

    python benchmarks/measured_prosody.py --scores_of outputs/whisper_llm outputs/emosllm \
        --enroll_per_speaker 2 --output_json benchmarks/results/measured_prosody_late_fusion.json
"""

from __future__ import annotations

import argparse

import numpy as np
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics
from serhub.modeling.prosody import PROSODY_NUMBERS, measure_prosody
from serhub.recipes.data import load_dataset_dict
from serhub.recipes.reporting import write_json
from serhub.recipes.speaker_prosody import reference_rows
from tqdm.auto import tqdm

from serhub.heldout import heldout_dataset

FEATURES = PROSODY_NUMBERS


def measure(audio: np.ndarray, sampling_rate: int = 16000) -> np.ndarray:
    """The ten numbers of one clip (``modeling.prosody.measure_prosody``)."""
    return measure_prosody(audio, sampling_rate)


def relative_to_speaker(x: np.ndarray, speakers: list) -> np.ndarray:
    """Each row minus the mean of its speaker's rows (NaN-aware)."""
    out = x.copy()
    speakers = np.asarray(speakers)
    for s in np.unique(speakers):
        rows = speakers == s
        out[rows] -= np.nanmean(x[rows], axis=0)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="synthetic_emotions_v2")
    parser.add_argument("--heldout_clips_per_voice", type=int, default=12)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_json", default=None)
    parser.add_argument("--model", default=None, help="a trained speech classifier: add its pooled vector")
    parser.add_argument(
        "--scores_of",
        nargs="+",
        default=None,
        help="with --enroll_per_speaker: models whose class scores join the speaker-relative numbers (late fusion)",
    )
    parser.add_argument(
        "--enroll_per_speaker",
        type=int,
        default=0,
        help="with --model: enrol every voice on K of its clips (neutral first), score the others, and add "
        "the views relative to that reference",
    )
    args = parser.parse_args(argv)
    if args.enroll_per_speaker and not (args.model or args.scores_of):
        parser.error("--enroll_per_speaker needs --model (a trained speech classifier) or --scores_of MODEL")
    if args.scores_of and not args.enroll_per_speaker:
        parser.error("--scores_of needs --enroll_per_speaker K (the reference the numbers are relative to)")
    if args.enroll_per_speaker < 0:
        parser.error(
            f"--enroll_per_speaker is a number of clips per voice (>= 0), found {args.enroll_per_speaker}"
        )

    import datasets
    from sklearn.ensemble import HistGradientBoostingClassifier

    corpus = load_dataset_dict(args.dataset)
    heldout = datasets.load_from_disk(str(heldout_dataset(args.heldout_clips_per_voice, args.seed)))
    splits = {
        "train": corpus["train"],
        "validation": corpus["validation"],
        "test": corpus["test"],
        "heldout_voices": heldout["heldout_voices"],
        "heldout_voices_telephone": heldout["heldout_voices_telephone"],
    }
    measured = {}
    for name, split in splits.items():
        rows = [measure(ex["audio"]["array"], ex["audio"]["sampling_rate"]) for ex in tqdm(split, desc=name)]
        measured[name] = (np.stack(rows), list(split["speaker_id"]), np.asarray(split["emotion"]))
    names = corpus["train"].features["emotion"].names
    labels = list(range(len(names)))

    if args.scores_of or args.model:
        enrolled = {
            name: enrolment_rows(m[1], m[2], names.index("neutral"), args.enroll_per_speaker)
            for name, m in measured.items()
        }
        out = (
            late_fusion(args, splits, measured, names, enrolled)
            if args.scores_of
            else with_encoder(args, splits, measured, labels, enrolled)
        )
        if args.output_json:
            write_json(args.output_json, out, portable_paths=True)
        return out
    results = {}
    for view, transform in {
        "per clip": lambda x, s: x,
        "relative to the speaker": relative_to_speaker,
    }.items():
        x_train, speakers, y_train = measured["train"]
        model = HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_depth=3, random_state=args.seed
        )
        model.fit(transform(x_train, speakers), y_train, sample_weight=(1.0 / np.bincount(y_train))[y_train])
        results[view] = {}
        for name in list(splits)[1:]:
            x, speakers, y = measured[name]
            scores = classification_metrics(
                model.predict(transform(x, speakers)).tolist(),
                y.tolist(),
                labels=labels,
                bootstrap=args.bootstrap,
                seed=args.seed,
            )
            results[view][name] = {
                k: round(float(scores[k]), 4)
                for k in ("macro_f1", "macro_f1_ci_low", "macro_f1_ci_high", "unweighted_accuracy")
            }
        print(f"{view:25s} " + "  ".join(f"{name} {r['macro_f1']:.3f}" for name, r in results[view].items()))
    out = {
        "what": (
            "macro-F1 of a gradient-boosted classifier of ten measured prosody numbers per clip "
            "(no encoder), trained on the training split; 'relative to the speaker' subtracts each "
            "speaker's mean over its clips in the split"
        ),
        "command": "python benchmarks/measured_prosody.py --output_json benchmarks/results/measured_prosody.json",
        "features": list(FEATURES),
        "classifier": "HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_depth=3), class-balanced",
        "results": results,
    }
    if args.output_json:
        write_json(args.output_json, out)
    return out


def pooled_vectors(model_dir: str, splits: dict, batch_size: int = 16) -> dict:
    """The speech classifier's pooled vector of every clip (its own feature extractor, trimming
    included) and its own predicted class."""
    import torch

    from serhub.loading import load_classifier

    classifier = load_classifier(model_dir)
    model, feature_extractor = classifier.model.eval(), classifier.feature_extractor
    vectors = {}
    for name, split in splits.items():
        pooled, predicted = [], []
        for start in tqdm(range(0, len(split), batch_size), desc=f"{name}: pooled vectors"):
            audio = [np.asarray(a["array"]) for a in split[start : start + batch_size]["audio"]]
            inputs = feature_extractor(audio, sampling_rate=16000, return_tensors="pt")
            values = inputs.get("input_values", inputs.get("input_features"))
            with torch.no_grad():
                vector = model.pooled_representation(values, inputs.get("attention_mask"))
                predicted.append(model.classifier(vector).argmax(-1).numpy())
            pooled.append(vector.numpy())
        vectors[name] = (np.concatenate(pooled), np.concatenate(predicted))
    return vectors


def enrolment_rows(speakers, emotions, neutral: int, k: int) -> np.ndarray:
    """Which rows enrol their voice: its first ``k`` clips with the neutral ones first (none for k=0)."""
    return reference_rows(speakers, emotions, neutral, k)


def relative_to_reference(x: np.ndarray, speakers, reference: np.ndarray) -> np.ndarray:
    """Each row minus the mean of its speaker's reference rows."""
    out, speakers = x.copy(), np.asarray(speakers)
    for s in np.unique(speakers):
        own = speakers == s
        out[own] -= x[own & reference].mean(axis=0)
    return out


def with_encoder(args, splits: dict, measured: dict, labels: list, enrolled: dict) -> dict:
    """Per clip: the model, a logistic regression on its pooled vector, and on the vector with the
    ten numbers beside it (missing F0 numbers: the training split's median). ``enrolled``: each
    split's enrolment rows (left out of the figures); with any, the views relative to that reference."""
    from serhub.metrics.ser_metrics.ser_metrics import per_speaker_macro_f1
    from sklearn.decomposition import PCA
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    vectors = pooled_vectors(args.model, splits)
    fill = np.nanmedian(measured["train"][0], axis=0)
    numbers = {name: np.where(np.isnan(m[0]), fill, m[0]) for name, m in measured.items()}
    scored = {name: ~rows for name, rows in enrolled.items()}
    relative = {  # the enrolled views only
        name: relative_to_reference(numbers[name], measured[name][1], enrolled[name])
        for name in measured
        if args.enroll_per_speaker
    }
    components = make_pipeline(StandardScaler(), PCA(16, random_state=args.seed)).fit(vectors["train"][0])

    def inputs(name: str, view: str) -> np.ndarray:
        parts = {
            "pooled vector": lambda: vectors[name][0],
            "the ten numbers": lambda: numbers[name],
            "relative": lambda: relative[name],
            "components": lambda: components.transform(vectors[name][0]),
        }
        return np.hstack([parts[p]() for p in VIEWS[view]])

    def scores(predicted, name: str) -> dict:
        rows = scored[name]
        references = measured[name][2][rows].tolist()
        predicted = list(map(int, np.asarray(predicted)[rows]))
        found = classification_metrics(
            predicted, references, labels=labels, bootstrap=args.bootstrap, seed=args.seed
        )
        keys = ("macro_f1", "macro_f1_ci_low", "macro_f1_ci_high", "unweighted_accuracy")
        out = {k: round(float(found[k]), 4) for k in keys}
        voices = list(
            per_speaker_macro_f1(predicted, references, np.asarray(measured[name][1])[rows], labels).values()
        )
        out.update(
            voices=len(voices),
            voice_median=round(float(np.median(voices)), 4),
            voice_lowest=round(min(voices), 4),
        )
        out["num_samples"] = len(references)
        return out

    def balanced(y):
        return (1.0 / np.bincount(y))[y]

    names = list(splits)[1:]
    y_train = measured["train"][2]
    results = {"the model": {name: scores(vectors[name][1], name) for name in names}}
    views = ["pooled vector", "pooled vector + the ten numbers"]
    if args.enroll_per_speaker:
        views += list(VIEWS)[2:]
    for view in views:
        if view.endswith("(gradient-boosted)"):
            fitted = HistGradientBoostingClassifier(
                max_iter=200, learning_rate=0.05, max_depth=3, random_state=args.seed
            ).fit(inputs("train", view), y_train, sample_weight=balanced(y_train))
            results[view] = {name: scores(fitted.predict(inputs(name, view)), name) for name in names}
            continue
        if view.endswith("(MLP)"):
            fitted = make_pipeline(
                StandardScaler(), MLPClassifier((64,), alpha=1.0, max_iter=2000, random_state=args.seed)
            ).fit(inputs("train", view), y_train)
            results[view] = {name: scores(fitted.predict(inputs(name, view)), name) for name in names}
            continue
        best = None
        for strength in (0.003, 0.01, 0.03, 0.1, 1.0):
            fitted = make_pipeline(
                StandardScaler(),
                LogisticRegression(C=strength, max_iter=3000, class_weight="balanced"),
            ).fit(inputs("train", view), y_train)
            chosen = scores(fitted.predict(inputs("validation", view)), "validation")["macro_f1"]
            if best is None or chosen > best[0]:
                best = (chosen, strength, fitted)
        results[view] = {name: scores(best[2].predict(inputs(name, view)), name) for name in names}
        results[view]["C"] = best[1]
    for view, rows in results.items():
        print(f"{view:72s} " + "  ".join(f"{n} {r['macro_f1']:.3f}" for n, r in rows.items() if n != "C"))
    command = f"python benchmarks/measured_prosody.py --model {args.model}"
    if args.enroll_per_speaker:
        command += f" --enroll_per_speaker {args.enroll_per_speaker}"
    return {
        "what": (
            "per clip: the speech classifier's own predictions, and a logistic regression (standardised, "
            "class-balanced, C chosen on validation) on its pooled vector, without and with the ten measured "
            "prosody numbers, trained on the training split"
            + (
                f"; every voice enrolled on {args.enroll_per_speaker} of its clips (neutral first, training "
                "voices too), left out of the figures, and the views relative to that reference added"
                if args.enroll_per_speaker
                else ""
            )
        ),
        "command": command + f" --output_json {args.output_json}",
        "model": args.model,
        "enroll_per_speaker": args.enroll_per_speaker,
        "features": list(FEATURES),
        "results": results,
    }


def class_log_probabilities(model_dir: str, splits: dict, names: list[str], batch_size: int = 16) -> dict:
    """Every clip's log-probability of each of ``names`` from the model's pipeline (any serhub model)."""
    from serhub.loading import load_classifier

    classifier = load_classifier(model_dir)
    out = {}
    for name, split in splits.items():
        audio = [
            np.asarray(a["array"], dtype=np.float32) for a in tqdm(split["audio"], desc=f"{name}: audio")
        ]
        answers = classifier(audio, top_k=len(names), batch_size=batch_size)
        scores = [{a["label"]: a["score"] for a in answer} for answer in answers]
        out[name] = np.log(np.array([[s.get(c, 0.0) for c in names] for s in scores]) + 1e-9)
    return out


def late_fusion(args, splits: dict, measured: dict, names: list[str], enrolled: dict) -> dict:
    """Per model of ``--scores_of``: its own answers, and a gradient-boosted classifier (trained on the
    training split) of its class log-probabilities beside the ten numbers relative to the enrolled
    reference; figures of the clips that enrolled nothing."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    labels = list(range(len(names)))
    fill = np.nanmedian(measured["train"][0], axis=0)
    relative = {
        name: relative_to_reference(np.where(np.isnan(m[0]), fill, m[0]), m[1], enrolled[name])
        for name, m in measured.items()
    }

    def scores(predicted, name: str) -> dict:
        rows = ~enrolled[name]
        found = classification_metrics(
            list(map(int, np.asarray(predicted)[rows])), measured[name][2][rows].tolist(), labels=labels,
            bootstrap=args.bootstrap, seed=args.seed,
        )  # fmt: skip
        keys = ("macro_f1", "macro_f1_ci_low", "macro_f1_ci_high", "unweighted_accuracy")
        return {k: round(float(found[k]), 4) for k in keys} | {"num_samples": int(rows.sum())}

    y = measured["train"][2]
    fitted = HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, max_depth=3, random_state=args.seed
    )
    fitted.fit(relative["train"], y, sample_weight=(1.0 / np.bincount(y))[y])
    shown = list(splits)[1:]
    results = {
        "the ten numbers relative to the reference alone (gradient-boosted)": {
            name: scores(fitted.predict(relative[name]), name) for name in shown
        }
    }
    for model in args.scores_of:
        logp = class_log_probabilities(model, splits, names)
        fused = {name: np.hstack([logp[name], relative[name]]) for name in splits}
        fitted = HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_depth=3, random_state=args.seed
        ).fit(fused["train"], y, sample_weight=(1.0 / np.bincount(y))[y])
        results[model] = {
            "the model itself": {name: scores(logp[name].argmax(1), name) for name in shown},
            "its class log-probabilities + the ten numbers relative to the reference (gradient-boosted)": {
                name: scores(fitted.predict(fused[name]), name) for name in shown
            },
        }
    for key, rows in results.items():
        for view, row in rows.items() if key in args.scores_of else [(key, rows)]:
            print(
                f"{key[-40:]:40s} {view[:60]:60s} "
                + "  ".join(f"{n} {r['macro_f1']:.3f}" for n, r in row.items())
            )
    return {
        "what": (
            f"late fusion: each model's class log-probabilities beside the ten measured prosody numbers minus their "
            f"mean over each voice's {args.enroll_per_speaker} enrolled clips (neutral first; training voices "
            "too), a gradient-boosted classifier trained on the training split; figures of the clips that "
            "enrolled nothing. The training split's scores come from models trained on it."
        ),
        "command": "python benchmarks/measured_prosody.py --scores_of "
        + " ".join(args.scores_of)
        + f" --enroll_per_speaker {args.enroll_per_speaker} --output_json {args.output_json}",
        "enroll_per_speaker": args.enroll_per_speaker,
        "features": list(FEATURES),
        "results": results,
    }


# what each view of ``with_encoder`` reads (the last three need an enrolled reference)
VIEWS = {
    "pooled vector": ("pooled vector",),
    "pooled vector + the ten numbers": ("pooled vector", "the ten numbers"),
    "the ten numbers relative to the enrolled reference (gradient-boosted)": ("relative",),
    "16 components of the pooled vector + the ten numbers relative to the reference (gradient-boosted)": (
        "components",
        "relative",
    ),
    "16 components of the pooled vector + the ten numbers relative to the reference (MLP)": (
        "components",
        "relative",
    ),
}


if __name__ == "__main__":
    main()
