"""EnsembleForAudioClassification: the votes on constructed disagreements, the soft vote as the mean,
label orders that differ between members, transcript members, save -> fresh-process reload, the
pipeline, and the errors a wrong ensemble gets."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from serhub.modeling import EnsembleForAudioClassification
from serhub.modeling.configuration_ensemble import EnsembleConfig
from serhub.modeling.modeling_ensemble import hard_vote, soft_vote, transcript_token_limit
from transformers import LlamaConfig, LlamaForSequenceClassification, pipeline

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import make_tokenizer  # noqa: E402
from test_speech_emotion import LABELS, clips, make  # noqa: E402


def probs(*rows):
    """(1, M, C) from one probability row per member."""
    return torch.tensor([rows], dtype=torch.float32)


def test_hard_vote_majority_and_tie_breaker():
    a, b, c = [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]
    shares = hard_vote(probs(a, a, b), tie_breaker=2)  # two for class 0: the majority wins
    assert shares.argmax(-1).item() == 0 and shares[0, 0] == pytest.approx(2 / 3, abs=1e-3)
    for breaker in range(3):  # one vote each: the tie-breaker's label
        assert hard_vote(probs(a, b, c), tie_breaker=breaker).argmax(-1).item() == breaker
    # 2-2 between classes 0 and 1: the breaker (member 3, voting 1) decides
    assert hard_vote(probs(a, a, b, b), tie_breaker=3).argmax(-1).item() == 1
    assert hard_vote(probs(a, a, b, b), tie_breaker=0).argmax(-1).item() == 0
    assert torch.allclose(hard_vote(probs(a, b, c), 0).sum(-1), torch.ones(1))


def test_soft_vote_is_the_mean():
    p = torch.softmax(torch.randn(4, 3, 5), -1)
    assert torch.allclose(soft_vote(p), p.mean(1))


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two tiny speech classifiers (the second with its labels in another order) and a tiny text
    classifier (a Llama sequence classifier with its tokenizer)."""
    root = tmp_path_factory.mktemp("members")
    first, fe = make("whisper")
    first.save_pretrained(root / "speech_a")
    fe.save_pretrained(root / "speech_a")
    reordered = LABELS[::-1]
    second, fe2 = make("wavlm")  # random head: only the names of its outputs change
    second.config.id2label = dict(enumerate(reordered))
    second.config.label2id = {n: i for i, n in enumerate(reordered)}
    second.save_pretrained(root / "speech_b")
    fe2.save_pretrained(root / "speech_b")
    tokenizer = make_tokenizer(root / "text")
    torch.manual_seed(1)
    text = LlamaForSequenceClassification(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            pad_token_id=tokenizer.pad_token_id,
            num_labels=len(LABELS),
            id2label=dict(enumerate(LABELS)),
            label2id={n: i for i, n in enumerate(LABELS)},
        )
    )
    text.save_pretrained(root / "text")
    return root


def spec(root, text=True):
    out = [
        {"name": "a", "model": str(root / "speech_a")},
        {"name": "b", "model": str(root / "speech_b")},
    ]
    if text:
        out.append({"name": "t", "model": str(root / "text"), "input": "transcript"})
    return out


TRANSCRIPTS = ["i love this place", "please call me back", "hello there"]


def member_reference(root, audio):
    """Each member's probabilities computed directly, in LABELS order."""
    a = pipeline("audio-classification", model=str(root / "speech_a"), trust_remote_code=True)
    b = pipeline("audio-classification", model=str(root / "speech_b"), trust_remote_code=True)
    t = pipeline("text-classification", model=str(root / "text"))
    rows = []
    for clip, text in zip(audio, TRANSCRIPTS):
        per = []
        for scores in (a(clip, top_k=None), b(clip, top_k=None), t(text, top_k=None)):
            found = {s["label"]: s["score"] for s in scores}
            per.append([found[label] for label in LABELS])
        rows.append(per)
    return torch.tensor(rows)


def test_members_in_any_label_order_and_both_votes(members):
    audio = clips()
    reference = member_reference(members, audio)
    for voting in ("soft", "hard"):
        ensemble = EnsembleForAudioClassification.from_members(spec(members), voting=voting, tie_breaker="b")
        assert ensemble.config.labels == LABELS
        inputs = ensemble.feature_extractor(audio, sampling_rate=16000, return_tensors="pt")
        out = ensemble(**inputs, transcripts=TRANSCRIPTS)
        assert torch.allclose(out.member_probabilities, reference, atol=1e-4)
        if voting == "soft":
            assert torch.allclose(out.logits.exp(), reference.mean(1), atol=1e-4)
        else:
            expected = hard_vote(reference, tie_breaker=1).argmax(-1)
            assert torch.equal(out.logits.argmax(-1), expected)
        # batched == one by one
        for i, clip in enumerate(audio):
            single = ensemble(
                **ensemble.feature_extractor([clip], sampling_rate=16000, return_tensors="pt"),
                transcripts=[TRANSCRIPTS[i]],
            )
            assert torch.allclose(single.logits, out.logits[i : i + 1], atol=1e-4)


def test_save_and_reload_in_a_fresh_process_and_pipeline(members, tmp_path):
    ensemble = EnsembleForAudioClassification.from_members(spec(members, text=False), voting="soft")
    ensemble.save_pretrained(tmp_path / "ens")
    saved = json.loads((tmp_path / "ens" / "config.json").read_text())
    assert saved["model_type"] == "ser_ensemble" and [m["name"] for m in saved["members"]] == ["a", "b"]
    assert not list((tmp_path / "ens").glob("*.safetensors"))  # members stay where they are
    audio = clips()
    inputs = ensemble.feature_extractor(audio, sampling_rate=16000, return_tensors="pt")
    expected = ensemble(**inputs).logits
    np.save(tmp_path / "audio.npy", np.stack([np.pad(c, (0, 12345 - len(c))) for c in audio]))
    np.save(tmp_path / "lengths.npy", np.array([len(c) for c in audio]))
    script = f"""
import numpy as np, torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification
model = AutoModelForAudioClassification.from_pretrained({str(tmp_path / "ens")!r}, trust_remote_code=True)
fe = AutoFeatureExtractor.from_pretrained({str(tmp_path / "ens")!r}, trust_remote_code=True)
audio, lengths = np.load({str(tmp_path / "audio.npy")!r}), np.load({str(tmp_path / "lengths.npy")!r})
inputs = fe([a[:n] for a, n in zip(audio, lengths)], sampling_rate=16000, return_tensors="pt")
np.save({str(tmp_path / "logits.npy")!r}, model(**inputs).logits.numpy())
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
    assert np.allclose(np.load(tmp_path / "logits.npy"), expected.numpy(), atol=1e-5)
    classifier = pipeline("audio-classification", model=str(tmp_path / "ens"), trust_remote_code=True)
    top = classifier(audio[0], top_k=None)
    assert [s["label"] for s in top][0] == LABELS[int(expected[0].argmax())]
    assert sum(s["score"] for s in top) == pytest.approx(1.0, abs=1e-4)


def test_relative_member_paths_travel_with_the_folder(members, tmp_path):
    import shutil

    folder = tmp_path / "bundle"
    shutil.copytree(members / "speech_a", folder / "members" / "speech_a")
    ensemble = EnsembleForAudioClassification.from_members(
        [{"name": "a", "model": "members/speech_a"}], base=folder
    )
    ensemble.save_pretrained(folder)
    moved = tmp_path / "moved"
    shutil.move(folder, moved)
    reloaded = EnsembleForAudioClassification.from_pretrained(moved)
    inputs = reloaded.feature_extractor(clips()[:1], sampling_rate=16000, return_tensors="pt")
    assert torch.isfinite(reloaded(**inputs).logits).all()


def test_wrong_ensembles_are_refused_with_the_reason(members, tmp_path):
    with pytest.raises(ValueError, match="tie_breaker 'z' is not a member"):
        EnsembleConfig(spec(members), tie_breaker="z")
    with pytest.raises(ValueError, match="voting must be one of"):
        EnsembleConfig(spec(members), voting="majority")
    with pytest.raises(ValueError, match="member names must be unique"):
        EnsembleConfig([{"name": "a", "model": "x"}, {"name": "a", "model": "y"}])
    with pytest.raises(ValueError, match="member 'gone' .* cannot be loaded"):
        EnsembleForAudioClassification.from_members([{"name": "gone", "model": str(tmp_path / "nothing")}])
    with pytest.raises(ValueError, match="does not know the labels"):
        EnsembleForAudioClassification.from_members(spec(members, text=False), labels=["neutral", "bored"])
    ensemble = EnsembleForAudioClassification.from_members(spec(members))
    inputs = ensemble.feature_extractor(clips()[:1], sampling_rate=16000, return_tensors="pt")
    with pytest.raises(ValueError, match="no asr_model"):
        ensemble(**inputs)


@pytest.mark.slow
def test_transcript_members_read_one_shared_asr_pass(members, whisper_tiny_dir):
    """A real recogniser (Whisper tiny.en, offline) writes the transcript the text member reads."""

    ensemble = EnsembleForAudioClassification.from_members(spec(members), asr_model=whisper_tiny_dir)
    from serhub.audio_io import stream_audio

    audio = np.concatenate(list(stream_audio("/usr/share/asterisk/sounds/en/agent-alreadyon.wav")))
    batch = [audio, audio[: 2 * 16000]]  # two clips: the recogniser runs batched
    out = ensemble(**ensemble.feature_extractor(batch, sampling_rate=16000, return_tensors="pt"))
    assert "already" in out.transcripts[0].lower() and len(out.transcripts) == 2
    direct = ensemble(
        **ensemble.feature_extractor(batch, sampling_rate=16000, return_tensors="pt"),
        transcripts=out.transcripts,
    )
    assert torch.allclose(direct.logits, out.logits)
    # Whisper loops on silence and noise; a transcript stays within what fast speech of that length holds
    noise = (1e-3 * np.random.default_rng(0).standard_normal(3 * 16000)).astype(np.float32)
    looped = ensemble(
        **ensemble.feature_extractor([noise], sampling_rate=16000, return_tensors="pt")
    ).transcripts
    tokens = ensemble._asr.tokenizer(looped[0], add_special_tokens=False).input_ids
    assert len(tokens) <= transcript_token_limit([noise]) == 28


def test_a_transcript_is_capped_by_the_longest_clip():
    second = np.zeros(16000, np.float32)
    assert transcript_token_limit([second]) == 16  # 10 + 6 per second
    assert transcript_token_limit([second, np.zeros(5 * 16000, np.float32)]) == 40
    assert transcript_token_limit([np.zeros(600 * 16000, np.float32)]) == 440  # Whisper's own limit
