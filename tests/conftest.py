"""Test set-up: offline, a throw-away HF_HOME, and shared fixtures (tiny corpora, converted weights)."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Before any Hugging Face library is imported: never reach the Hub, never touch the user's cache.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="serhub-tests-hf-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)  # no HF_HOME left behind per run
# Converted offline weights are kept between runs (a conversion takes ~30 s); CI starts empty.
os.environ.setdefault("SERHUB_CACHE", str(REPO / ".cache" / "serhub"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def synthetic_small():
    """A reduced synthetic_emotions corpus (8 clips per speaker, all 15 speakers)."""
    from serhub.datasets_scripts import synthetic_emotions

    return synthetic_emotions.build(clips_per_speaker=8, seed=0)


@pytest.fixture(scope="session")
def whisper_tiny_dir():
    from serhub.modeling.offline_assets import DEFAULT_ENCODER, resolve_pretrained

    return resolve_pretrained(DEFAULT_ENCODER)


@pytest.fixture(scope="session")
def smollm2_dir():
    from serhub.modeling.offline_assets import DEFAULT_LLM, resolve_pretrained

    return resolve_pretrained(DEFAULT_LLM)
