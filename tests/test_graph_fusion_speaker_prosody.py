"""Graph fusion's speaker-relative prosody node (``--speaker_prosody``): ten measured numbers per clip
against the speaker's enrolled reference, on tiny random encoders."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from serhub.modeling import GraphFusionFeatureExtractor, GraphFusionForAudioClassification
from serhub.modeling.speaker_reference import NO_PROSODY
from transformers import pipeline

sys.path.insert(0, str(Path(__file__).parent))
from test_graph_fusion import LABELS, parts, speech, tone  # noqa: E402, F401  (the fixture)

_models = {}


def build(parts, speaker_prosody=True):  # noqa: F811
    if speaker_prosody not in _models:
        torch.manual_seed(0)
        model = GraphFusionForAudioClassification.from_components(
            [parts / "enc_a"], LABELS, text_model=None, asr_model=None, hidden_size=32, fusion_heads=4,
            mlp_size=32, spectral_channels=8, speaker_prosody=speaker_prosody,
        )  # fmt: skip
        with torch.no_grad():  # heads away from their near-zero start, so differences show
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.3 * torch.randn_like(p))
            if speaker_prosody:
                model.prosody.set_statistics(
                    torch.zeros(10), torch.zeros(10), torch.full((10,), 2.0), torch.ones(10)
                )
        _models[speaker_prosody] = model.eval()
    return _models[speaker_prosody]


def clips():
    return [speech("agent-alreadyon"), speech("activated"), tone(220, 0.8)]


def inputs(audio):
    return GraphFusionFeatureExtractor(return_prosody=True)(audio, sampling_rate=16000, return_tensors="pt")


def test_the_prosody_node_reads_the_enrolled_speaker(parts):  # noqa: F811
    model = build(parts)
    assert model.config.branches[-1] == "prosody"
    batch = inputs(clips())
    assert batch["prosody_values"].shape == (3, 10)
    with torch.no_grad():
        unenrolled = model(**batch)
        assert unenrolled.node_mask.shape == (3, 4) and unenrolled.node_mask[:, -1].all()
        reference = inputs([speech("vm-goodbye")])
        model.enroll_speaker(**reference)  # everything the extractor returns may be passed
        enrolled = model(**batch)
        assert not torch.allclose(enrolled.logits, unenrolled.logits)
        # enrolling is passing each clip the reference: the mean of the reference clips' numbers
        given = model.prosody.reference_of(reference["prosody_values"]).expand(3, 10)
        model.forget_speaker()
        assert torch.allclose(model(**batch, prosody_reference=given).logits, enrolled.logits, atol=1e-6)
        assert torch.allclose(model(**batch).logits, unenrolled.logits, atol=1e-6)  # forgotten
        # batched == one at a time
        for i, clip in enumerate(clips()):
            single = model(**inputs([clip]))
            assert torch.allclose(single.logits, unenrolled.logits[i : i + 1], atol=1e-4)


def test_save_reload_keeps_the_statistics_and_the_pipeline_measures_prosody(parts, tmp_path):  # noqa: F811
    model = build(parts)
    model.config.speaker_normalization = "prosody relative to the speaker"
    model.save_pretrained(tmp_path / "gf")
    GraphFusionFeatureExtractor(return_prosody=True).save_pretrained(tmp_path / "gf")
    reloaded = GraphFusionForAudioClassification.from_pretrained(tmp_path / "gf").eval()
    assert torch.equal(reloaded.prosody.std, torch.full((10,), 2.0))
    batch = inputs(clips())
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, model(**batch).logits, atol=1e-5)
    classifier = pipeline("audio-classification", model=str(tmp_path / "gf"), trust_remote_code=True)
    scores = classifier(clips()[1], top_k=None)
    expected = model(**inputs([clips()[1]])).logits.softmax(-1)[0]
    by_label = {s["label"]: s["score"] for s in scores}
    assert [by_label[label] for label in LABELS] == pytest.approx(expected.tolist(), abs=1e-4)


def test_missing_numbers_and_enrolling_a_model_without_the_node_are_refused(parts):  # noqa: F811
    batch = GraphFusionFeatureExtractor()(clips(), sampling_rate=16000, return_tensors="pt")
    with pytest.raises(ValueError, match="pass prosody_values"):
        build(parts)(**batch)
    assert "prosody_values" in NO_PROSODY
    with pytest.raises(ValueError, match="trained without a speaker reference"):
        build(parts, speaker_prosody=False).enroll_speaker(**inputs(clips()))
    with pytest.raises(ValueError, match="hold no voiced speech"):
        build(parts).enroll_speaker(**inputs([np.zeros(16000, dtype=np.float32)]))


def recipe_argv(parts, data, out, *extra):  # noqa: F811
    return ["--speech_models", str(parts / "enc_a"), "--text_model", "", "--asr_model", "",
            "--transcripts", "dataset", "--test_transcripts", "dataset", "--dataset_name_or_path", str(data),
            "--labels", *LABELS, "--output_dir", str(out), "--num_train_epochs", "2", "--hidden_size", "32",
            "--mlp_size", "32", "--spectral_channels", "8", "--bootstrap", "20", "--heldout_eval", "false",
            "--per_device_train_batch_size", "16", *extra]  # fmt: skip


def test_recipe_trains_the_prosody_node_and_saves_a_model_that_enrols(parts, synthetic_small, tmp_path):  # noqa: F811
    from serhub.recipes import graph_fusion

    names = synthetic_small["train"].features["emotion"].names
    keep = {names.index(label) for label in LABELS}
    data = tmp_path / "data"
    synthetic_small.filter(lambda r: r["emotion"] in keep).save_to_disk(str(data))
    out = tmp_path / "run"
    rows = graph_fusion.main(recipe_argv(parts, data, out, "--speaker_prosody", "true"))
    shown = [r["model"] for r in rows]
    assert "prosody alone" in shown and "all but prosody, gat" in shown and "all but f0, gat" in shown
    config = json.loads((out / "config.json").read_text())
    assert config["speaker_prosody"] is True and "prosody" in config["branches"]
    assert "prosody" in config["speaker_normalization"]  # serhub.heldout and evaluate enrol it
    assert json.loads((out / "preprocessor_config.json").read_text())["return_prosody"] is True
    assert "speaker prosody (not in the paper)" in (out / "README.md").read_text()
    # each test voice's macro-F1, and the lowest expected by chance, beside the test figure
    import datasets

    test_voices = set(map(str, datasets.load_from_disk(str(data))["test"]["speaker_id"]))
    results = json.loads((out / "eval_results.json").read_text())["test"]
    assert (
        set(results["per_speaker_macro_f1"]) == test_voices
        and "chance_lowest" in results["per_speaker_chance"]
    )
    model = GraphFusionForAudioClassification.from_pretrained(out).eval()
    # the statistics were set from the training split and saved
    assert not torch.equal(model.prosody.std, torch.ones(10)) and torch.isfinite(model.prosody.fill).all()
    classifier = pipeline("audio-classification", model=str(out), trust_remote_code=True)
    plain = {s["label"]: s["score"] for s in classifier(speech("activated"), top_k=None)}
    assert set(plain) == set(LABELS)
    classifier.model.enroll_speaker(**inputs([speech("vm-goodbye"), speech("agent-alreadyon")]))
    enrolled = {s["label"]: s["score"] for s in classifier(speech("activated"), top_k=None)}
    assert enrolled != pytest.approx(plain, abs=1e-6)
    # a corpus without the speaker column is refused before the run claims its folder
    with pytest.raises(ValueError, match="needs each clip's speaker: the data has no 'voice' column"):
        graph_fusion.main(
            recipe_argv(
                parts, data, tmp_path / "refused", "--speaker_prosody", "true", "--speaker_column", "voice"
            )
        )
    assert not (tmp_path / "refused").exists()


def test_each_part_starts_from_the_same_weights_whatever_else_the_config_builds(parts):  # noqa: F811
    """A trainable part's first weights come from the seed and its own name, not from the parts built
    before it: the prosody node, or an ablation's fewer nodes, leave the others' start unchanged."""

    def fresh(seed=0, **kwargs):
        torch.manual_seed(seed)
        return GraphFusionForAudioClassification.from_components(
            [parts / "enc_a", parts / "enc_b"], LABELS, text_model=parts / "text", hidden_size=32,
            fusion_heads=4, mlp_size=32, spectral_channels=8, **kwargs,
        )  # fmt: skip

    full, with_prosody, ablated = fresh(), fresh(speaker_prosody=True), fresh(branches=["speech_1", "f0"])
    shared = (
        "speech_proj.",
        "text_proj.",
        "f0_embedding.",
        "f0_proj.",
        "spectral.",
        "fusion.",
        "classifier.",
    )
    weights = {k: v for k, v in full.state_dict().items() if k.startswith(shared)}
    assert any(k.startswith("fusion.") for k in weights) and any(k.startswith("spectral.") for k in weights)
    for other in (with_prosody, ablated):
        state = other.state_dict()
        for key, value in weights.items():
            assert torch.equal(state[key], value), key
    for branch in ("speech_1", "f0"):  # the nodes' type embeddings, row by branch
        assert torch.equal(
            full.node_type[full.config.branches.index(branch)],
            ablated.node_type[ablated.config.branches.index(branch)],
        )
    other_seed = fresh(seed=1).state_dict()  # the seed still chooses the draw
    drawn = {k: v for k, v in weights.items() if v.is_floating_point() and v.std() > 0}
    assert drawn and not any(torch.equal(other_seed[k], v) for k, v in drawn.items())
