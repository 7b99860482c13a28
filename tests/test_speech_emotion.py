"""SpeechEmotionForAudioClassification: tiny random encoders of every supported family."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch
from serhub.modeling import (
    SpeechEmotionConfig,
    SpeechEmotionFeatureExtractor,
    SpeechEmotionForAudioClassification,
)
from transformers import (
    AutoModelForAudioClassification,
    Data2VecAudioConfig,
    HubertConfig,
    Wav2Vec2Config,
    WavLMConfig,
    WhisperConfig,
    pipeline,
)

LABELS = ["neutral", "happy", "sad"]
_SSL = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16, 16),
    conv_stride=(5, 4),
    conv_kernel=(10, 8),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    # "layer" norm in the conv stem: group norm would mix padding into the features (wav2vec2-base)
    feat_extract_norm="layer",
    do_stable_layer_norm=True,
)
ENCODERS = {
    "wavlm": lambda: WavLMConfig(**_SSL, num_buckets=16, max_bucket_distance=64),
    "hubert": lambda: HubertConfig(**_SSL),
    "wav2vec2": lambda: Wav2Vec2Config(**_SSL),
    "data2vec-audio": lambda: Data2VecAudioConfig(
        **{**_SSL, "num_conv_pos_embeddings": 5, "num_conv_pos_embedding_groups": 2}
    ),
    "whisper": lambda: WhisperConfig(
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_layers=1,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        num_mel_bins=16,
        max_source_positions=200,  # a 4-s window, so a 10-s clip exercises chunking
        vocab_size=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=3,
    ),
}


def make(encoder: str, **kwargs):
    torch.manual_seed(0)
    config = SpeechEmotionConfig(
        audio_config=ENCODERS[encoder](),
        id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)},
        head_hidden_size=16,
        pooling_attention_size=8,
        head_dropout=0.0,
        **kwargs,
    )
    fe = (
        SpeechEmotionFeatureExtractor("log_mel", 16)
        if encoder == "whisper"
        else SpeechEmotionFeatureExtractor()
    )
    return SpeechEmotionForAudioClassification(config).eval(), fe


def save_speaker_prosody_model(folder):
    """A tiny Whisper speech classifier that reads prosody relative to the speaker (statistics set as the
    recipe would), saved with its prosody-measuring feature extractor; returns the folder."""
    from serhub.modeling import SpeechEmotionFeatureExtractor

    model, fe = make("whisper", speaker_prosody=True)
    model.prosody.set_statistics(np.zeros(10), np.zeros(10), np.full(10, 0.5), np.full(10, 3.0))
    model.save_pretrained(folder)
    settings = {
        k: v for k, v in fe.to_dict().items() if k not in ("feature_extractor_type", "return_prosody")
    }
    SpeechEmotionFeatureExtractor(**settings, return_prosody=True).save_pretrained(folder)
    return folder


def clips(lengths=(8000, 12345, 4000), seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_padded_batch_equals_one_by_one(encoder):
    model, fe = make(encoder)
    audio = clips()
    with torch.no_grad():
        batched = model(**fe(audio, sampling_rate=16000, return_tensors="pt")).logits
        single = torch.cat([model(**fe(a, sampling_rate=16000, return_tensors="pt")).logits for a in audio])
    assert batched.shape == (3, 3)
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_precomputed_encoder_states_give_the_same_logits(encoder):
    model, fe = make(encoder)
    inputs = fe(clips(), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        direct = model(**inputs).logits
        states, mask = model.encode(
            inputs.get("input_values", inputs.get("input_features")), inputs["attention_mask"]
        )
        cached = model(encoder_hidden_states=states, encoder_attention_mask=mask).logits
    assert states.shape[1] == model.config.num_encoder_layers + 1
    torch.testing.assert_close(direct, cached)


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_loss_decreases_when_training_the_head(encoder):
    model, fe = make(encoder)
    model.train()
    audio = clips((6000, 7000, 8000, 9000, 6500, 7500), seed=1)
    inputs = fe(audio, sampling_rate=16000, return_tensors="pt")
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-2)
    losses = []
    for _ in range(40):
        loss = model(**inputs, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    # the frozen encoder did not move and got no gradients
    assert all(p.grad is None for p in model.encoder.parameters())


@pytest.mark.parametrize("loss_type", ["ce", "weighted_ce", "focal", "vector_scaling"])
def test_every_loss_option_trains(loss_type):
    model, fe = make("whisper", loss_type=loss_type, class_counts=[50, 20, 5])
    model.train()
    states = torch.randn(12, 3, 10, 32)
    mask = torch.ones(12, 10, dtype=torch.bool)
    labels = torch.arange(12) % 3
    states[torch.arange(12), :, :, labels] += 2.0  # a learnable signal
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    first = None
    for _ in range(30):
        loss = model(encoder_hidden_states=states, encoder_attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first


def test_dimensional_head_trains_with_ccc_and_ignores_missing_values():
    model, fe = make("wavlm", dimensions=["arousal", "valence", "dominance"])
    inputs = fe(clips(), sampling_rate=16000, return_tensors="pt")
    targets = torch.tensor([[3.0, 4.0, 5.0], [2.0, float("nan"), 1.0], [6.0, 2.0, 4.0]])
    out = model(**inputs, labels=torch.tensor([0, 1, 2]), dimensional_labels=targets)
    assert out.dimensional.shape == (3, 3) and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.regressor.out_proj.weight.grad.abs().sum() > 0


def test_freezing_options():
    def trainable(model, prefix):
        return sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and n.startswith(prefix))

    frozen, _ = make("wavlm")
    assert trainable(frozen, "encoder.") == 0 and trainable(frozen, "classifier.") > 0
    stem_frozen, _ = make("wavlm", freeze_encoder=False, freeze_feature_encoder=True)
    assert trainable(stem_frozen, "encoder.model.feature_extractor.") == 0
    assert trainable(stem_frozen, "encoder.model.encoder.layers.") > 0
    top1, _ = make("wavlm", freeze_encoder=False, num_trainable_encoder_layers=1)
    assert (
        trainable(top1, "encoder.model.encoder.layers.0.") == 0
        and trainable(top1, "encoder.model.encoder.layers.1.") > 0
    )
    with pytest.raises(ValueError, match="num_trainable_encoder_layers must be in"):
        make("wavlm", freeze_encoder=False, num_trainable_encoder_layers=5)


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="unsupported speech encoder 'bert'"):
        SpeechEmotionConfig(audio_config={"model_type": "bert"})
    with pytest.raises(ValueError, match="loss_type must be one of"):
        SpeechEmotionConfig(loss_type="hinge")
    with pytest.raises(ValueError, match="class_counts has 2 entries but there are 3 labels"):
        SpeechEmotionConfig(id2label=dict(enumerate(LABELS)), class_counts=[1, 2])
    with pytest.raises(ValueError, match="needs the training-set class counts"):
        make("wavlm", loss_type="weighted_ce")[0](
            encoder_hidden_states=torch.randn(1, 3, 4, 32),
            encoder_attention_mask=torch.ones(1, 4, dtype=torch.bool),
            labels=torch.tensor([0]),
        )


def test_from_encoder_pretrained_keeps_the_encoder_weights(tmp_path):
    from transformers import WavLMModel

    torch.manual_seed(0)
    encoder = WavLMModel(ENCODERS["wavlm"]()).eval()
    encoder.save_pretrained(tmp_path / "enc")
    model = SpeechEmotionForAudioClassification.from_encoder_pretrained(
        str(tmp_path / "enc"), LABELS, head_hidden_size=16
    )
    for name, tensor in encoder.state_dict().items():
        torch.testing.assert_close(model.encoder.model.state_dict()[name], tensor)
    assert model.config.id2label == dict(enumerate(LABELS)) and model.config.label2id["sad"] == 2


def test_long_audio_is_encoded_in_chunks():
    model, fe = make("whisper")  # 4-s encoder window
    ten_s = clips((160_000,))[0]
    with torch.no_grad():
        out = model(**fe(ten_s, sampling_rate=16000, return_tensors="pt"))
        states, mask = model.encode(fe(ten_s, sampling_rate=16000, return_tensors="pt")["input_features"])
    assert torch.isfinite(out.logits).all()
    assert mask.sum() == 500  # 1000 mel frames -> 500 encoder frames, over 3 chunks


def test_feature_extractor_input_checks():
    fe = SpeechEmotionFeatureExtractor()
    with pytest.raises(ValueError, match="is empty"):
        fe(np.zeros(0, dtype=np.float32), sampling_rate=16000)
    with pytest.raises(ValueError, match="NaN or Inf"):
        fe(np.array([0.0, np.nan, 0.1], dtype=np.float32), sampling_rate=16000)
    with pytest.raises(ValueError, match=r"mono 1-D.*mean\(axis=0\)"):
        fe(np.zeros((2, 16000), dtype=np.float32), sampling_rate=16000)
    with pytest.raises(ValueError, match="expects 16000 Hz; resample first"):
        fe(np.zeros(8000, dtype=np.float32), sampling_rate=8000)
    pcm = (np.sin(np.linspace(0, 100, 16000)) * 16000).astype(np.int16)
    as_float = pcm.astype(np.float32) / 32768.0
    mel = SpeechEmotionFeatureExtractor("log_mel", 16)
    np.testing.assert_allclose(
        mel(pcm)["input_features"], mel(as_float)["input_features"], atol=1e-5
    )  # int16 PCM accepted
    silent = mel(np.zeros(16000, dtype=np.float32))["input_features"]  # all-zero: valid, constant features
    assert np.isfinite(silent).all() and silent.std() == 0


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """A saved classifier of each family, with its feature extractor and remote code."""
    out = {}
    for encoder in ("whisper", "wavlm"):
        model, fe = make(encoder)
        path = tmp_path_factory.mktemp(encoder)
        model.save_pretrained(path)
        fe.save_pretrained(path)
        with torch.no_grad():
            expected = model(**fe(clips(), sampling_rate=16000, return_tensors="pt")).logits
        out[encoder] = (path, expected)
    return out


def test_reload_in_a_fresh_process_gives_equal_logits(saved_models, tmp_path):
    np.save(tmp_path / "clips.npy", np.array(clips(), dtype=object), allow_pickle=True)
    script = textwrap.dedent(
        f"""
        import json, sys, numpy as np, torch
        from transformers import AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification
        audio = list(np.load({str(tmp_path / "clips.npy")!r}, allow_pickle=True))
        out = {{}}
        for name, path in {json.dumps({k: str(v[0]) for k, v in saved_models.items()})}.items():
            fe = AutoFeatureExtractor.from_pretrained(path, trust_remote_code=True)
            for auto in (AutoModelForAudioClassification, AutoModel):
                model = auto.from_pretrained(path, trust_remote_code=True).eval()
                with torch.no_grad():
                    out[name + auto.__name__] = model(**fe(audio, sampling_rate=16000, return_tensors="pt")).logits.tolist()
        assert not any(m.split(".")[0] in ("modeling", "serhub") for m in sys.modules), "serhub was imported"
        print(json.dumps(out))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    logits = json.loads(result.stdout.strip().splitlines()[-1])
    for name, (_, expected) in saved_models.items():
        for auto in ("AutoModelForAudioClassification", "AutoModel"):
            torch.testing.assert_close(torch.tensor(logits[name + auto]), expected, atol=1e-5, rtol=0)


def test_pipeline_returns_label_names_for_every_input_kind(saved_models, tmp_path):
    path, _ = saved_models["whisper"]
    clf = pipeline("audio-classification", model=str(path), trust_remote_code=True)
    audio = clips()[0]
    direct = clf(audio, top_k=3)
    assert [set(d) for d in direct] == [{"label", "score"}] * 3 and {d["label"] for d in direct} == set(
        LABELS
    )
    assert abs(sum(d["score"] for d in direct) - 1.0) < 1e-5
    assert len(clf(audio, top_k=1)) == 1
    for rate in (8000, 22050, 44100):  # the pipeline resamples dict inputs
        resampled = np.interp(
            np.linspace(0, len(audio), int(len(audio) * rate / 16000)), np.arange(len(audio)), audio
        ).astype(np.float32)
        result = clf({"raw": resampled, "sampling_rate": rate}, top_k=3)
        assert {d["label"] for d in result} == set(LABELS)
    wav = tmp_path / "clip.wav"
    sf.write(wav, audio, 16000)
    from_file = clf(str(wav), top_k=3)
    assert from_file[0]["label"] == direct[0]["label"]
    assert from_file[0]["score"] == pytest.approx(direct[0]["score"], abs=1e-3)  # 16-bit file rounding
    batch = clf(clips(), top_k=2, batch_size=2)
    assert len(batch) == 3 and all(len(r) == 2 for r in batch)
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio")
    with pytest.raises(ValueError):
        clf(str(not_audio))


def test_pipeline_batching_matches_single_calls(saved_models):
    path, _ = saved_models["wavlm"]
    clf = pipeline("audio-classification", model=str(path), trust_remote_code=True)
    single = [clf(a, top_k=3) for a in clips()]
    batched = clf(clips(), top_k=3, batch_size=3)
    for s, b in zip(single, batched):
        assert [d["label"] for d in s] == [d["label"] for d in b]
        assert np.allclose([d["score"] for d in s], [d["score"] for d in b], atol=1e-5)


def test_auto_class_loads_in_process(saved_models):
    path, expected = saved_models["wavlm"]
    model = AutoModelForAudioClassification.from_pretrained(path, trust_remote_code=True).eval()
    assert not any(p.requires_grad for p in model.encoder.parameters())  # still frozen after loading
    fe = SpeechEmotionFeatureExtractor.from_pretrained(path)
    with torch.no_grad():
        torch.testing.assert_close(
            model(**fe(clips(), sampling_rate=16000, return_tensors="pt")).logits, expected, atol=1e-5, rtol=0
        )


@pytest.mark.parametrize("encoder", ["wavlm", "wav2vec2"])
def test_a_clip_shorter_than_the_conv_stem_is_scored_alike_alone_and_batched(encoder):
    from serhub.modeling.feature_extraction_speech_emotion import receptive_field

    model, fe = make(encoder)
    fe.min_samples = receptive_field(
        model.config.audio_config.conv_kernel, model.config.audio_config.conv_stride
    )
    tiny = (0.1 * np.random.default_rng(1).standard_normal(20)).astype(np.float32)  # < 45-sample stem
    long = clips((16000,))[0]
    with torch.no_grad():
        alone = model(**fe(tiny, sampling_rate=16000, return_tensors="pt")).logits
        batched = model(**fe([long, tiny], sampling_rate=16000, return_tensors="pt")).logits[1:]
        silence = model(**fe(np.zeros(45, np.float32), sampling_rate=16000, return_tensors="pt")).logits
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)
    assert not torch.allclose(alone, silence)  # scored from the clip, not from padding


def test_min_samples_come_from_the_encoder_conv_stem(tmp_path):
    from transformers import Wav2Vec2FeatureExtractor, WavLMModel

    WavLMModel(ENCODERS["wavlm"]()).save_pretrained(tmp_path / "enc")
    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(tmp_path / "enc")
    fe = SpeechEmotionFeatureExtractor.from_encoder_pretrained(tmp_path / "enc")
    assert fe.min_samples == 10 + (8 - 1) * 5  # kernels (10, 8), strides (5, 4)
    assert fe(np.ones(7, np.float32), sampling_rate=16000)["input_values"].shape == (1, 45)


@pytest.mark.parametrize("use_weighted_layer_sum", [True, False])
def test_global_frame_norm_learns_statistics_in_training_and_keeps_them(use_weighted_layer_sum, tmp_path):
    """frame_norm="global": every layer read is standardised with statistics gathered over the training
    frames (padding left out); inference uses them unchanged, a padded batch equals one clip at a time,
    and they are saved with the model."""
    model, fe = make("whisper", frame_norm="global", use_weighted_layer_sum=use_weighted_layer_sum)
    audio = clips()
    inputs = fe(audio, sampling_rate=16000, return_tensors="pt")
    assert int(model.frame_norm.num_frames) == 0
    with torch.no_grad():
        model.train()(**inputs)  # one training forward gathers the valid frames' statistics
        model.eval()
        states, mask = model.encode(inputs["input_features"], inputs["attention_mask"])
        layers = states if use_weighted_layer_sum else states[:, -1:]
        valid = layers.permute(0, 2, 1, 3)[mask.bool()].flatten(1)  # frames, L*D
        assert int(model.frame_norm.num_frames) == int(mask.sum())
        torch.testing.assert_close(model.frame_norm.running_mean, valid.mean(0), atol=1e-5, rtol=1e-4)
        before = model.frame_norm.running_mean.clone()
        batched = model(**inputs).logits
        assert torch.equal(model.frame_norm.running_mean, before)  # inference does not update them
        single = torch.cat([model(**fe(a, sampling_rate=16000, return_tensors="pt")).logits for a in audio])
        torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)
    model.save_pretrained(tmp_path / "m")
    reloaded = SpeechEmotionForAudioClassification.from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, batched)
    with pytest.raises(ValueError, match="frame_norm must be one of"):
        make("whisper", frame_norm="layer")


@pytest.mark.parametrize("encoder", ["whisper", "wavlm"])
def test_trimmed_silence_gives_the_same_logits_as_the_speech_alone(encoder, tmp_path):
    """With trim_silence_db, a clip padded with quiet stretches (a recording) and the same speech cut
    out with the timeline's margin score alike, and the setting survives save/reload."""
    model, fe = make(encoder)
    fe = type(fe)(**{**fe.to_dict(), "trim_silence_db": 35.0, "trim_margin_s": 0.03})
    rng = np.random.default_rng(3)
    speech = (0.3 * np.sin(np.arange(12000) / 4) * (1 + 0.1 * rng.standard_normal(12000))).astype(np.float32)
    margin = np.zeros(480, dtype=np.float32)
    cut = np.concatenate([margin, speech, margin])  # a VAD segment with the timeline's 30 ms pad
    hiss = (1e-4 * rng.standard_normal(16000)).astype(np.float32)  # 70 dB below the speech
    recording = np.concatenate([hiss[:9000], speech, hiss[9000:]])
    # the quiet second is gone: what is left is the speech, the margins and at most a 25 ms frame each side
    assert len(fe.trim_silence(recording)) <= len(speech) + 2 * (480 + 400)
    with torch.no_grad():
        logits = [model(**fe(x, sampling_rate=16000, return_tensors="pt")).logits for x in (cut, recording)]
    torch.testing.assert_close(logits[0], logits[1], atol=2e-2, rtol=0)
    fe.save_pretrained(tmp_path)
    assert SpeechEmotionFeatureExtractor.from_pretrained(tmp_path).trim_silence_db == 35.0
    plain = type(fe)(**{**fe.to_dict(), "trim_silence_db": None})
    assert (
        plain(recording)[plain.model_input_names[0]].shape[1]
        > fe(recording)[fe.model_input_names[0]].shape[1]
    )
    with pytest.raises(ValueError, match="trim_silence_db must be > 0"):
        type(fe)(**{**fe.to_dict(), "trim_silence_db": 0})


def test_noise_margin_trims_a_noisy_recordings_pauses_and_leaves_clean_clips_alone(tmp_path):
    """trim_noise_margin_db: pauses filled with noise 15 dB below the speech (not trim_silence_db below
    it) are cut as a clean recording's silences are; a clean recording is trimmed as before; saved."""
    rng = np.random.default_rng(5)
    speech = (0.3 * np.sin(np.arange(12000) / 4) * (1 + 0.1 * rng.standard_normal(12000))).astype(np.float32)
    rms = float(np.sqrt(np.mean(speech**2)))
    noise = (rms * 10 ** (-15 / 20) * rng.standard_normal(40000)).astype(np.float32)
    noisy = np.concatenate([noise[:16000], speech + noise[16000:28000], noise[28000:]])
    clean = np.concatenate([1e-4 * noise[:16000], speech, 1e-4 * noise[28000:]]).astype(np.float32)
    base = SpeechEmotionFeatureExtractor(trim_silence_db=35.0)
    fe = SpeechEmotionFeatureExtractor(trim_silence_db=35.0, trim_noise_margin_db=10.0)
    assert len(base.trim_silence(noisy)) == len(noisy)  # 15 dB below the speech: kept by the loudness bar
    assert len(fe.trim_silence(noisy)) <= len(speech) + 2 * (480 + 400)  # the noisy pauses are cut
    assert len(fe.trim_silence(clean)) == len(base.trim_silence(clean))  # a clean clip: as before
    fe.save_pretrained(tmp_path)
    assert SpeechEmotionFeatureExtractor.from_pretrained(tmp_path).trim_noise_margin_db == 10.0
    with pytest.raises(ValueError, match="trim_noise_margin_db must be > 0 dB and needs trim_silence_db"):
        SpeechEmotionFeatureExtractor(trim_noise_margin_db=10.0)


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_an_enrolled_speaker_is_standardised_with_their_own_statistics(encoder):
    """enroll_speaker: every layer's frames standardised with the reference clips' per-channel statistics
    (the recipe's --speaker_norm), a padded batch still equal to one clip at a time; forget_speaker undoes it."""
    model, fe = make(
        encoder, speaker_normalization="encoder frames standardised per speaker (ssl_classifier)"
    )
    audio, references = clips(), clips((6000, 9000), seed=1)
    with torch.no_grad():
        raw = model(**fe(audio, sampling_rate=16000, return_tensors="pt")).logits
        model.enroll_speaker(**fe(references, sampling_rate=16000, return_tensors="pt"))
        batched = model(**fe(audio, sampling_rate=16000, return_tensors="pt")).logits
        single = torch.cat([model(**fe(a, sampling_rate=16000, return_tensors="pt")).logits for a in audio])
        # by hand: the reference clips' frames, one clip at a time, pooled per channel
        frames = []
        for clip in references:
            states, mask = model.encode(*fe(clip, sampling_rate=16000, return_tensors="pt").values())
            frames.append(states[0][:, mask[0].bool()].double())  # L+1, T, D
        frames = torch.cat(frames, dim=1)
        mean, std = frames.mean(1), frames.std(1, unbiased=False).clamp_min(1e-3)
        states, mask = model.encode(*fe(audio[:1], sampling_rate=16000, return_tensors="pt").values())
        model.forget_speaker()  # the frames are given standardised here
        by_hand = model(
            encoder_hidden_states=((states - mean[None, :, None].float()) / std[None, :, None].float()),
            encoder_attention_mask=mask,
        ).logits
        again = model(**fe(audio, sampling_rate=16000, return_tensors="pt")).logits
    assert torch.allclose(batched, single, atol=1e-4) and not torch.allclose(batched, raw, atol=1e-3)
    assert torch.allclose(batched[:1], by_hand, atol=1e-4)
    assert torch.equal(again, raw)
    with pytest.raises(ValueError, match="every encoder layer"):
        model.enroll_speaker(encoder_hidden_states=torch.zeros(1, 5, 8))
    with pytest.raises(ValueError, match="no valid encoder frame"):
        model.enroll_speaker(
            encoder_hidden_states=torch.zeros(1, *states.shape[1:]),
            encoder_attention_mask=torch.zeros(1, mask.shape[1]),
        )
    with pytest.raises(ValueError, match="needs the reference clips"):
        model.enroll_speaker()


def test_the_self_enrolment_plan_scores_every_clip_relative_to_its_own_speaker():
    from serhub.evaluate_data import self_enrolment_plan

    speakers = ["a", "b", "a", "b", "a", "b", "b"]
    assert self_enrolment_plan(speakers) == {"a": ([0, 2, 4], [0, 2, 4]), "b": ([1, 3, 5, 6], [1, 3, 5, 6])}
    many = ["a"] * 10
    reference, scored = self_enrolment_plan(many, max_reference=3)["a"]
    assert reference == [0, 4, 9] and scored == list(range(10))  # spread over the speaker's clips
    with pytest.raises(ValueError, match=r"1 speaker\(s\) have a single clip \('c'\)"):
        self_enrolment_plan(["a", "a", "c"])
    with pytest.raises(ValueError, match="at least 2 clips"):
        self_enrolment_plan(speakers, max_reference=1)


def test_the_enrolment_plan_takes_neutral_clips_first_and_keeps_the_rest_to_score():
    from serhub.evaluate_data import enrolment_plan

    speakers = ["a", "a", "a", "b", "b", "b", "b"]
    references = ["happy", "neutral", "sad", "sad", "angry", "neutral", "happy"]
    plan = enrolment_plan(speakers, references, 2)
    assert plan == {
        "a": ([0, 1], [2]),
        "b": ([3, 5], [4, 6]),
    }  # the neutral clip, topped up with the first other
    assert enrolment_plan(speakers, references, 1, label=None) == {"a": ([0], [1, 2]), "b": ([3], [4, 5, 6])}
    with pytest.raises(ValueError, match=r"speaker 'a' has 3 clip\(s\); enrolling 3 leaves none to score"):
        enrolment_plan(speakers, references, 3)
    with pytest.raises(ValueError, match="at least one reference clip"):
        enrolment_plan(speakers, references, 0)
