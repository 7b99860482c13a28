"""How much of each speech descriptor can be heard in one clip of a voice never heard before?

    HF_HUB_OFFLINE=1 python benchmarks/descriptor_probe.py [--dataset synthetic_emotions_v2] [--enrol 4]

The descriptors ("high pitch, expressive intonation, fast") are relative to the speaker: pitch level
and range against the speaker's usual, speaking rate against their usual pace. A model that hears one
clip of an unseen voice does not know that voice's usual. This probe bounds what any reader can get:
logistic regressions (scikit-learn, standardised inputs, C=0.05) fit on the training split and scored
on the test split (voices and sentences in no other split), per attribute and for the emotion, from

- ``whisper``: every layer of the frozen Whisper tiny.en encoder, mean and standard deviation over the
  clip's frames (what the descriptor branch reads), and
- ``prosody``: the ten measured prosody numbers (``modeling.prosody.measure_prosody``: swift-f0 pitch
  level and spread, voicing, pace),

each as the clip alone, and relative to the speaker: minus the mean of the speaker's first ``--enrol``
clips (neutral ones first, as a user enrols a speaker; the test voices' own). Beside each attribute:
always writing the training split's commonest word. Writes the table as JSON to ``--output_json``.
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np


def features(dataset, encoder_dir: str) -> dict[str, np.ndarray]:
    """Per clip: Whisper tiny.en's every layer pooled (mean, std over the clip's frames), and the prosody numbers."""
    import torch
    from serhub.modeling.prosody import measure_prosody
    from tqdm.auto import tqdm
    from transformers import WhisperFeatureExtractor, WhisperModel

    extractor = WhisperFeatureExtractor.from_pretrained(encoder_dir)
    encoder = WhisperModel.from_pretrained(encoder_dir).encoder.eval()
    pooled, prosody = [], []
    for row in tqdm(dataset, desc="encoding"):
        audio = np.asarray(row["audio"]["array"], dtype=np.float32)
        inputs = extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
        frames = max(1, int(len(audio) / 16000 * 50))  # 50 encoder frames per second
        with torch.no_grad():
            layers = torch.stack(
                [h[0, :frames] for h in encoder(inputs, output_hidden_states=True).hidden_states]
            )
        pooled.append(torch.cat([layers.mean(1), layers.std(1)], -1).flatten().numpy())
        prosody.append(np.nan_to_num(measure_prosody(audio)))
    return {"whisper": np.stack(pooled), "prosody": np.stack(prosody)}


def relative_to_speaker(x: np.ndarray, speakers: list[str], labels: np.ndarray, enrol: int, neutral: int = 0):
    """Each clip minus the mean of its speaker's first ``enrol`` clips (neutral ones first)."""
    speakers, out = np.asarray(speakers), x.copy()
    for s in np.unique(speakers):
        own = np.flatnonzero(speakers == s)
        reference = sorted(own, key=lambda i: (labels[i] != neutral, i))[:enrol]
        out[own] = x[own] - x[reference].mean(0)
    return out


def main(argv=None):
    from serhub.datasets_scripts.descriptors import descriptor_words
    from serhub.modeling.offline_assets import DEFAULT_ENCODER, resolve_pretrained
    from serhub.recipes.data import embedded_dataset_path, load_dataset_dict
    from serhub.recipes.reporting import write_json
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="synthetic_emotions_v2")
    parser.add_argument("--enrol", type=int, default=4, help="the speaker's reference clips (neutral first)")
    parser.add_argument("--output_json", default="benchmarks/results/descriptor_probe.json")
    args = parser.parse_args(argv)
    start = time.time()
    data = load_dataset_dict(str(embedded_dataset_path(args.dataset)), None)
    encoder = str(resolve_pretrained(DEFAULT_ENCODER))
    split = {name: data[name] for name in ("train", "test")}
    feats = {name: features(ds, encoder) for name, ds in split.items()}
    emotion = {name: np.asarray(ds["emotion"]) for name, ds in split.items()}
    words = {name: [descriptor_words(t) for t in ds["descriptors"]] for name, ds in split.items()}
    attributes = [a for a in words["train"][0] if all(a in w for w in words["test"])]
    rows = []
    for source in ("whisper", "prosody"):
        for relative in (False, True):
            x = {}
            for name in split:
                x[name] = feats[name][source]
                if relative:
                    x[name] = relative_to_speaker(
                        x[name], split[name]["speaker_id"], emotion[name], args.enrol
                    )
            scaler = StandardScaler().fit(x["train"])
            train, test = scaler.transform(x["train"]), scaler.transform(x["test"])
            row = {
                "features": source,
                "speaker": f"{args.enrol} enrolled clips" if relative else "one clip alone",
            }
            for a in attributes:
                y_train = [w[a] for w in words["train"]]
                y_test = np.asarray([w[a] for w in words["test"]])
                common = collections.Counter(y_train).most_common(1)[0][0]
                fit = LogisticRegression(C=0.05, max_iter=3000).fit(train, y_train)
                accuracy = float((fit.predict(test) == y_test).mean())
                floor = float((y_test == common).mean())
                row[a] = {
                    "accuracy": round(accuracy, 3),
                    "commonest": round(floor, 3),
                    "above": round(accuracy - floor, 3),
                }
            fit = LogisticRegression(C=0.05, max_iter=3000).fit(train, emotion["train"])
            row["emotion_macro_f1"] = round(
                float(f1_score(emotion["test"], fit.predict(test), average="macro")), 3
            )
            rows.append(row)
            print(
                f"{source:8s} {row['speaker']:18s} "
                + "  ".join(f"{a}: {row[a]['accuracy']:.2f} ({row[a]['above']:+.2f})" for a in attributes)
                + f"  emotion macro-F1 {row['emotion_macro_f1']:.2f}"
            )
    write_json(
        args.output_json,
        {
            "dataset": args.dataset,
            "enrol": args.enrol,
            "rows": rows,
            "seconds": round(time.time() - start, 1),
        },
    )


if __name__ == "__main__":
    main()
