"""GraphFusionForAudioClassification and recipes/graph_fusion.py on tiny random encoders (and the real
Whisper tiny.en as the ASR sub-model): the F0 quantiser and tracker on known tones, batched == one by
one, fresh-process reload, the pipeline, every fusion training, missing modalities masked, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from serhub.modeling import GraphFusionConfig, GraphFusionFeatureExtractor, GraphFusionForAudioClassification
from serhub.modeling.offline_assets import resolve_pretrained
from serhub.modeling.prosody import hz_to_mel, quantize_f0, track_pitch
from transformers import BertConfig, BertModel, WavLMConfig, WavLMModel, WhisperConfig, WhisperModel, pipeline

from serhub.audio_io import stream_audio

LABELS = ["neutral", "happy", "sad"]
PROMPTS = Path("/usr/share/asterisk/sounds/en")


def speech(name):
    return np.concatenate(list(stream_audio(PROMPTS / f"{name}.wav")))


def tone(hz, seconds=1.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_quantiser_maps_known_frequencies_to_their_bins():
    f0 = torch.tensor([[50.0, 1100.0, 0.0, -1.0, 20.0, 5000.0]])
    assert quantize_f0(f0, 256).tolist() == [[1, 256, 0, -1, 1, 256]]
    # the mel midpoint of the range falls on the boundary between bins 128 and 129
    mid_mel = (float(hz_to_mel(50.0)) + float(hz_to_mel(1100.0))) / 2
    mid_hz = 700.0 * (10 ** (mid_mel / 2595.0) - 1)
    assert quantize_f0(torch.tensor([mid_hz * 0.999, mid_hz * 1.001]), 256).tolist() == [128, 129]
    # equal mel steps: each frequency's bin is where its mel value falls, and the bins keep the order
    lo, hi = float(hz_to_mel(50.0)), float(hz_to_mel(1100.0))
    hz = [80.0, 100.0, 155.0, 200.0, 262.0, 400.0, 800.0]
    expected = [int((float(hz_to_mel(f)) - lo) / (hi - lo) * 256) + 1 for f in hz]
    got = quantize_f0(torch.tensor(hz), 256).tolist()
    assert got == expected and got == sorted(got) and len(set(got)) == len(got)


@pytest.mark.parametrize("hz", [110.0, 220.0, 440.0])
def test_tracker_finds_the_pitch_of_tones_and_nothing_in_silence(hz):
    f0 = track_pitch(tone(hz))
    voiced = f0[f0 > 0]
    assert len(voiced) > 0.5 * len(f0)  # the first and last ~0.1 s read as unvoiced (edge frames)
    assert abs(np.median(voiced) - hz) / hz < 0.03
    assert (track_pitch(np.zeros(16000, dtype=np.float32)) == 0).all()
    assert track_pitch(np.zeros(1, dtype=np.float32)).tolist() == [0.0]  # one frame, unvoiced, no NaN


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("gf-parts")
    for name, d, layers in (("enc_a", 32, 2), ("enc_b", 48, 1)):
        torch.manual_seed(0)
        config = WhisperConfig(d_model=d, encoder_layers=layers, encoder_attention_heads=2, encoder_ffn_dim=2 * d,
                               decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=2 * d, num_mel_bins=80)  # fmt: skip
        WhisperModel(config).save_pretrained(root / name)
    torch.manual_seed(0)
    WavLMModel(WavLMConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                           conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=16,
                           num_conv_pos_embedding_groups=2)).save_pretrained(root / "wavlm")  # fmt: skip
    from transformers import AutoTokenizer

    minilm = resolve_pretrained("offline:minilm-l6-v2")
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(root / "text")  # fmt: skip
    tokenizer.save_pretrained(root / "text")
    return root


_models = {}


def build(parts, asr_dir=None, fusion="gat", speech=("enc_a", "enc_b")):
    key = (asr_dir, fusion, speech)
    if key not in _models:
        torch.manual_seed(0)
        model = GraphFusionForAudioClassification.from_components(
            [parts / s for s in speech], LABELS, text_model=parts / "text", asr_model=asr_dir, fusion=fusion,
            hidden_size=32, fusion_heads=4, mlp_size=32, spectral_channels=8,
        )  # fmt: skip
        with torch.no_grad():  # heads away from their near-zero start, so differences show
            for _name, p in model.named_parameters():
                if p.requires_grad:
                    p.add_(0.3 * torch.randn_like(p))
        _models[key] = model.eval()
    return _models[key]


def test_batched_equals_one_by_one_with_real_asr(parts, whisper_tiny_dir):
    model = build(parts, whisper_tiny_dir)
    fe = GraphFusionFeatureExtractor()
    clips = [speech("agent-alreadyon"), speech("activated"), tone(200, 0.7)]
    with torch.no_grad():
        batched = model(**fe(clips, sampling_rate=16000, return_tensors="pt"))
        assert "already" in batched.transcripts[0].lower() and "activated" in batched.transcripts[1].lower()
        for i, clip in enumerate(clips):
            single = model(**fe([clip], sampling_rate=16000, return_tensors="pt"))
            assert torch.allclose(single.logits, batched.logits[i : i + 1], atol=1e-4)
    assert batched.node_mask.shape == (3, 5) and batched.node_mask[:2].all()


def test_fresh_process_reload_and_pipeline(parts, whisper_tiny_dir, tmp_path):
    model = build(parts, whisper_tiny_dir)
    fe = GraphFusionFeatureExtractor()
    model.save_pretrained(tmp_path / "gf")
    fe.save_pretrained(tmp_path / "gf")
    assert (tmp_path / "gf" / "asr_tokenizer").is_dir() and (tmp_path / "gf" / "text_tokenizer").is_dir()
    clip = speech("activated")
    with torch.no_grad():
        expected = model(**fe([clip], sampling_rate=16000, return_tensors="pt")).logits.numpy()
    np.save(tmp_path / "clip.npy", clip)
    script = f"""
import numpy as np, torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification
m = AutoModelForAudioClassification.from_pretrained({str(tmp_path / "gf")!r}, trust_remote_code=True)
fe = AutoFeatureExtractor.from_pretrained({str(tmp_path / "gf")!r}, trust_remote_code=True)
with torch.no_grad():
    np.save({str(tmp_path / "out.npy")!r}, m(**fe([np.load({str(tmp_path / "clip.npy")!r})], sampling_rate=16000, return_tensors="pt")).logits.numpy())
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    assert np.allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)
    classifier = pipeline("audio-classification", model=str(tmp_path / "gf"), trust_remote_code=True)
    for audio in (clip, str(PROMPTS / "activated.wav")):  # an array, and a file (8 kHz, resampled)
        scores = classifier(audio, top_k=None)
        assert {s["label"] for s in scores} == set(LABELS)
        assert sum(s["score"] for s in scores) == pytest.approx(1.0, abs=1e-5)
    top = classifier(clip, top_k=1)[0]
    assert top["label"] == LABELS[int(expected[0].argmax())]


def test_missing_modalities_are_masked_not_zero_filled(parts):
    model = build(parts)  # no ASR: transcripts are given
    fe = GraphFusionFeatureExtractor(with_waveform=False)
    clips = [speech("activated"), np.zeros(16000, dtype=np.float32)]  # the second: silence, no voiced frame
    inputs = fe(clips, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        s = model.summaries(
            inputs["input_features"],
            inputs["attention_mask"],
            inputs["pitch_hz"],
            transcripts=["activated", ""],
        )
        out = model.fuse(s)
        text, f0 = model.config.branches.index("text"), model.config.branches.index("f0")
        assert out.node_mask[0].all() and not out.node_mask[1, text] and not out.node_mask[1, f0]
        assert torch.isfinite(out.logits).all()
        # what a masked node holds does not matter: it takes no part in attention or pooling
        s2 = dict(s, text=s["text"].clone(), f0_histogram=s["f0_histogram"].clone())
        s2["text"][1] += 100.0
        s2["f0_histogram"][1] = 1.0
        assert torch.allclose(model.fuse(s2).logits[1], out.logits[1], atol=1e-5)
        # without any transcript the text node is masked for every clip, and the result is still finite
        s3 = model.summaries(inputs["input_features"], inputs["attention_mask"], inputs["pitch_hz"])
        assert "text" not in s3 and torch.isfinite(model.fuse(s3).logits).all()


def test_wavlm_branch_reads_the_waveform(parts):
    model = build(parts, speech=("enc_a", "wavlm"))
    fe = GraphFusionFeatureExtractor()
    clips = [speech("activated"), speech("agent-alreadyon")[:20000]]
    with torch.no_grad():
        batched = model(**fe(clips, sampling_rate=16000, return_tensors="pt"), transcripts=["a", "b"])
        single = model(**fe(clips[1:], sampling_rate=16000, return_tensors="pt"), transcripts=["b"])
    assert torch.allclose(single.logits, batched.logits[1:], atol=1e-4)


@pytest.mark.parametrize("fusion", ["gat", "cross_attention", "concat"])
def test_every_fusion_trains(parts, fusion):
    model = build(parts, fusion=fusion)
    fe = GraphFusionFeatureExtractor(with_waveform=False)
    clips = [speech("activated"), speech("agent-alreadyon"), tone(150), tone(300)]
    inputs = fe(clips, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        s = model.summaries(
            inputs["input_features"],
            inputs["attention_mask"],
            inputs["pitch_hz"],
            transcripts=["a", "b", "c", "d"],
        )
    labels = torch.tensor([0, 1, 2, 1])
    torch.manual_seed(0)
    settings = {**model.config.to_dict(), "class_counts": [1, 2, 1], "dropout": 0.0}
    trained = GraphFusionForAudioClassification(model.config.__class__.from_dict(settings))
    frozen = {
        k: v for k, v in model.state_dict().items() if k.startswith(("speech_encoders.", "text_encoder."))
    }
    trained.load_state_dict(frozen, strict=False)  # the heads start fresh
    trained.train()
    optimizer = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(60):
        loss = trained.fuse(s, labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    assert all(not p.requires_grad for p in trained.speech_encoders.parameters())


def test_bad_input_is_explained(parts):
    fe = GraphFusionFeatureExtractor()
    with pytest.raises(ValueError, match="expects 16000 Hz"):
        fe([np.zeros(8000, dtype=np.float32)], sampling_rate=8000)
    with pytest.raises(ValueError, match="fusion must be one of"):
        GraphFusionConfig(fusion="mean")
    with pytest.raises(ValueError, match="are not configured"):
        GraphFusionConfig(branches=["text"], use_f0=True)
    model = build(parts)
    with pytest.raises(ValueError, match="input_features"):
        model()
    one = fe([np.array([0.1], dtype=np.float32)], sampling_rate=16000, return_tensors="pt")  # a 1-sample clip
    with torch.no_grad():
        out = model(**one, transcripts=[""])
    assert torch.isfinite(out.logits).all()


def test_recipe_writes_the_ablation_and_a_working_model(parts, synthetic_small, tmp_path):
    from serhub.recipes import graph_fusion

    names = synthetic_small["train"].features["emotion"].names
    keep = {names.index(label) for label in LABELS}
    data = tmp_path / "data"
    synthetic_small.filter(lambda r: r["emotion"] in keep).save_to_disk(str(data))
    out = tmp_path / "run"
    argv = ["--speech_models", str(parts / "enc_a"), str(parts / "enc_b"), "--text_model", str(parts / "text"),
            "--asr_model", "", "--transcripts", "dataset", "--test_transcripts", "dataset", "--dataset_name_or_path", str(data), "--labels", *LABELS,
            "--output_dir", str(out), "--num_train_epochs", "3", "--hidden_size", "32", "--mlp_size", "32",
            "--spectral_channels", "8", "--bootstrap", "20", "--heldout_eval", "false", "--per_device_train_batch_size", "16"]  # fmt: skip
    rows = graph_fusion.main(argv)
    names_ = [r["model"] for r in rows]
    for expected in ("enc_a alone", "text alone", "f0 alone", "spectral alone", "all, concat",
                     "all, cross_attention", "all, gat", "all but f0, gat", "vote of the 3 fusions"):  # fmt: skip
        assert expected in names_
    results = json.loads((out / "eval_results.json").read_text())
    assert "macro_f1_ci_low" in results["test"] and len(results["ablation"]) == len(rows)
    assert (out / "ablation.csv").read_text().count("\n") == len(rows) + 1
    card = (out / "README.md").read_text()
    assert "| all, gat |" in card and "RMVPE" in card
    # trained without an ASR model: from audio alone the text node is masked, the answer still comes
    classifier = pipeline("audio-classification", model=str(out), trust_remote_code=True)
    scores = classifier(speech("activated"), top_k=None)
    assert {s["label"] for s in scores} == set(LABELS) and all(np.isfinite(s["score"]) for s in scores)
    # a re-run reuses the cached features and every finished row
    cached = sorted(p.name for p in (out / "features").iterdir())
    again = graph_fusion.main(argv)
    assert sorted(p.name for p in (out / "features").iterdir()) == cached
    assert [r["test_macro_f1"] for r in again] == pytest.approx([r["test_macro_f1"] for r in rows])
