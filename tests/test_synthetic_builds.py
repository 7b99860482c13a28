"""The synthetic corpora build the same bytes every time: two builds with the same arguments give the
same ``manifest.json`` (split hashes, label counts, leaks), the same card and the same audio."""

from __future__ import annotations

import hashlib

import datasets
import pytest
from serhub.datasets_scripts import synthetic_emotions, synthetic_emotions_v2
from serhub.datasets_scripts.common import MANIFEST

BUILDS = {
    "version 1": (synthetic_emotions.main, ["--clips_per_speaker", "6", "--num_workers", "2"]),
    "version 2": (synthetic_emotions_v2.main, ["--clips_per_voice", "1", "--num_workers", "2"]),
    "version 2 heldout": (
        synthetic_emotions_v2.main,
        ["--clips_per_voice", "1", "--splits", "heldout", "--num_workers", "2"],
    ),
}


def content_sha256(folder) -> str:
    """sha256 over every split's rows, the audio's WAV bytes included."""
    dataset_dict = datasets.load_from_disk(str(folder))
    digest = hashlib.sha256()
    for split in sorted(dataset_dict):
        rows = dataset_dict[split].cast_column("audio", datasets.Audio(decode=False))
        for row in rows:
            for key in sorted(row):
                value = row[key]["bytes"] if key == "audio" else repr(row[key]).encode()
                digest.update(key.encode() + value)
    return digest.hexdigest()


@pytest.mark.parametrize("name", list(BUILDS))
def test_two_builds_are_identical(name, tmp_path):
    main, argv = BUILDS[name]
    built = []
    for attempt in ("first", "second"):
        out = tmp_path / attempt
        main(["--output_dir", str(out), *argv])
        built.append(((out / MANIFEST).read_bytes(), (out / "README.md").read_bytes(), content_sha256(out)))
    (manifest, card, content), again = built
    assert again[0] == manifest, "manifest.json differs between two builds"
    assert again[1] == card, "the dataset card differs between two builds"
    assert again[2] == content, "the rows (audio included) differ between two builds"
