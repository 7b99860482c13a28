"""ONNX export of the speech classifier: parity with PyTorch, dynamic batch and length, refusals."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from serhub.export_onnx import OnnxAudioClassifier, export_onnx

sys.path.insert(0, str(Path(__file__).parent))
from test_speech_emotion import LABELS, clips, make  # noqa: E402


def saved(tmp_path, encoder, **kwargs):
    model, fe = make(encoder, **kwargs)
    folder = tmp_path / f"{encoder}-model"
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    return model, fe, folder


@pytest.mark.parametrize("encoder", ["whisper", "wavlm"])
def test_onnx_matches_pytorch_at_any_batch_and_length(tmp_path, encoder):
    model, fe, folder = saved(tmp_path, encoder)
    report = export_onnx(folder, tmp_path / "onnx")
    out = tmp_path / "onnx"
    assert {"model.onnx", "config.json", "preprocessor_config.json", "onnx_export.json"} <= {
        p.name for p in out.iterdir()
    }
    assert report["max_abs_difference"] <= 1e-4 and len(report["check_clip_seconds"]) >= 3
    assert json.loads((out / "onnx_export.json").read_text())["outputs"] == ["logits"]
    clf = OnnxAudioClassifier(out)
    audio = clips((8000, 12345, 4000, 20000))  # lengths the export never saw, one batch and alone
    with torch.no_grad():
        expected = model(**fe(audio, sampling_rate=16000, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(clf.logits(audio), expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(clf.logits(audio[:1]), expected[:1], atol=1e-4, rtol=0)
    # the pipeline-like call: labels by probability
    result = clf(audio[0], top_k=len(LABELS))
    assert [r["label"] for r in result] == [LABELS[i] for i in np.argsort(-expected[0])]
    assert abs(sum(r["score"] for r in result) - 1.0) < 1e-5
    assert len(clf(audio[:2], top_k=1)) == 2


def test_dimensional_outputs_are_exported(tmp_path):
    model, fe, folder = saved(tmp_path, "whisper", dimensions=["arousal", "valence"])
    report = export_onnx(folder, tmp_path / "onnx")
    assert report["outputs"] == ["logits", "dimensional"] and report["max_abs_difference"] <= 1e-4


def test_an_existing_folder_is_not_overwritten(tmp_path):
    _, _, folder = saved(tmp_path, "wavlm")
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        export_onnx(folder, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    export_onnx(folder, out, overwrite=True)
    assert (out / "model.onnx").is_file() and not (out / "notes.txt").exists()


def test_a_speaker_prosody_model_is_refused(tmp_path):
    """Its head reads measured prosody and a speaker reference, which the ONNX graph has no input for."""
    _, _, folder = saved(tmp_path, "whisper", speaker_prosody=True)
    with pytest.raises(ValueError, match="relative to an enrolled speaker"):
        export_onnx(folder, tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()
