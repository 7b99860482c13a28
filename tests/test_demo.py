"""The Gradio demo (app.py): what it finds and computes, its errors, and the page itself driven in
headless Chromium (Debian's browser, installed by setup.sh) with a real uploaded recording."""

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import LABELS, make_encoder, make_llm, make_tokenizer  # noqa: E402
from test_speech_emotion import LABELS as SPEECH_LABELS  # noqa: E402
from test_speech_emotion import make  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = Path("/usr/share/asterisk/sounds/en")
spec = importlib.util.spec_from_file_location("serhub_demo_app", ROOT / "app.py")
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    """A folder as the recipes leave it: one trained model, and a folder that is not a model."""
    root = tmp_path_factory.mktemp("outputs")
    model, fe = make("whisper")
    model.save_pretrained(root / "tiny_classifier")
    fe.save_pretrained(root / "tiny_classifier")
    # a tiny generative audio-LLM, saved as the emosllm recipe saves its model
    import torch
    from serhub.modeling import AudioLLMForConditionalGeneration

    parts = tmp_path_factory.mktemp("parts")
    tokenizer = make_tokenizer(parts / "llm")
    make_llm(parts / "llm", "llama", len(tokenizer) + 1)
    make_encoder(parts / "enc", "whisper")
    torch.manual_seed(0)
    llm_model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        parts / "enc", parts / "llm", LABELS, connector="linear"
    )
    llm_model.save_pretrained(root / "tiny_audio_llm")
    processor.save_pretrained(root / "tiny_audio_llm")
    (root / "notes").mkdir()
    (root / "notes" / "config.json").write_text('{"model_type": "bert"}')
    return root


@pytest.fixture(scope="module")
def short_wav():
    return PROMPTS / "agent-alreadyon.wav"


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory):
    """~20 s: five real prompts with 1.5 s pauses between them."""
    names = ["agent-alreadyon", "activated", "agent-loginok", "agent-newlocation", "conf-onlyperson"]
    path = tmp_path_factory.mktemp("audio") / "long.wav"
    inputs, filters = [], []
    for i, name in enumerate(names):
        inputs += ["-i", str(PROMPTS / f"{name}.wav")]
        filters.append(f"[{i}:a]apad=pad_dur=1.5[a{i}]")
    joined = "".join(f"[a{i}]" for i in range(len(names))) + f"concat=n={len(names)}:v=0:a=1"
    graph = ";".join([*filters, joined])
    command = ["ffmpeg", "-nostdin", "-v", "error", "-y", *inputs, "-filter_complex", graph, "-ar", "16000", str(path)]  # fmt: skip
    subprocess.run(command, check=True)
    return path


def test_finds_the_serhub_models_only(models_root):
    found = app.find_models([models_root, models_root / "missing"])
    assert found == {
        "tiny_audio_llm (audio_llm)": str(models_root / "tiny_audio_llm"),
        "tiny_classifier (speech_emotion)": str(models_root / "tiny_classifier"),
    }


def test_short_input_gives_the_pipelines_labels(models_root, short_wav):
    result = app.analyse(str(short_wav), str(models_root / "tiny_classifier"))
    expected = app._classifier(str(models_root / "tiny_classifier"))(str(short_wav), top_k=None)
    assert result["labels"] == pytest.approx({s["label"]: s["score"] for s in expected}, abs=1e-5)
    assert result["plot"] is None and result["transcript"] == "" and result["answer"] is None


def test_audio_llm_writes_its_answer(models_root, short_wav):
    result = app.analyse(str(short_wav), str(models_root / "tiny_audio_llm"))
    assert set(result["labels"]) == set(LABELS)
    assert sum(result["labels"].values()) == pytest.approx(1.0, abs=1e-5)
    assert result["answer"].startswith("| ASR:")  # random weights: the words are noise, the format is not
    assert result["transcript"] == app.transcript_of(result["answer"])


def test_long_input_gets_a_timeline(models_root, long_wav, tmp_path):
    result = app.analyse(str(long_wav), str(models_root / "tiny_classifier"), plot_dir=tmp_path)
    assert result["duration"] > 15
    assert len(result["segments"]) >= 3
    assert Path(result["plot"]).is_file() and Path(result["plot"]).stat().st_size > 1000
    assert sum(result["labels"].values()) == pytest.approx(1.0, abs=1e-5)


def test_bad_input_gives_clear_errors(models_root, tmp_path, short_wav):
    model = str(models_root / "tiny_classifier")
    with pytest.raises(ValueError, match="No audio"):
        app.analyse(None, model)
    with pytest.raises(ValueError, match="No model"):
        app.analyse(str(short_wav), " ")
    with pytest.raises(ValueError, match="has no config.json"):
        app.analyse(str(short_wav), str(tmp_path))
    with pytest.raises(ValueError, match="Could not load the model someone/no-such-model"):
        app.analyse(str(short_wav), "someone/no-such-model")  # a Hub id, offline
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    with pytest.raises(ValueError, match="Could not read notes.wav as audio"):
        app.analyse(str(text), model)
    assert text.read_text() == "not audio at all"  # the user's file is untouched


def _visitor(models_root, audio, picked, typed="", allow_any_model=False):
    """The page's button as a visitor presses it (the request's values are theirs to choose)."""
    return app.classify(
        audio, picked, typed, models=app.find_models([models_root]), allow_any_model=allow_any_model
    )


def _evil_upload(tmp_path) -> tuple[Path, Path]:
    """What a visitor can upload through Gradio: a config.json whose auto_map names their code."""
    folder, marker = tmp_path / "upload", tmp_path / "PWNED"
    folder.mkdir()
    (folder / "evil_code.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    )
    auto_map = {
        k: "evil_code.Evil" for k in ("AutoConfig", "AutoModelForAudioClassification", "AutoFeatureExtractor")
    }
    (folder / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": auto_map}))
    return folder, marker


def test_visitors_choose_only_among_the_operators_models(models_root, short_wav, tmp_path):
    import gradio as gr

    folder, marker = _evil_upload(tmp_path)
    labels, plot, _, status = _visitor(models_root, str(short_wav), "tiny_classifier (speech_emotion)")
    assert set(labels) == set(SPEECH_LABELS) and plot is None
    assert str(models_root) not in status  # the page names the model, not where it lives on the server
    # a forged request naming a folder instead of a listed model loads nothing
    with pytest.raises(gr.Error, match="Pick one of this demo's models"):
        _visitor(models_root, str(short_wav), str(folder))
    # a typed folder is ignored without --allow_any_model: the picked model answers
    labels, *_ = _visitor(models_root, str(short_wav), "tiny_classifier (speech_emotion)", str(folder))
    assert set(labels) == set(SPEECH_LABELS)
    assert not marker.exists()


def test_even_an_operator_allowing_any_model_never_runs_a_models_code(models_root, short_wav, tmp_path):
    import gradio as gr

    folder, marker = _evil_upload(tmp_path)
    with pytest.raises(gr.Error, match="is not a serhub model") as caught:
        _visitor(models_root, str(short_wav), None, str(folder), allow_any_model=True)
    assert not marker.exists()
    with pytest.raises(gr.Error) as missing:
        _visitor(models_root, str(short_wav), None, "/srv/secret/model", allow_any_model=True)
    for error in (caught.value, missing.value):
        assert "Traceback" not in str(error) and "site-packages" not in str(error)
    text = tmp_path / "x.wav"
    text.write_text("no audio")
    with pytest.raises(gr.Error) as unreadable:
        _visitor(models_root, str(text), "tiny_classifier (speech_emotion)")
    assert str(tmp_path) not in str(unreadable.value) and "ffmpeg" not in str(unreadable.value)


def test_long_requests_leave_no_temporary_folder(models_root, long_wav, monkeypatch, tmp_path):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    labels, plot, _, status = _visitor(models_root, str(long_wav), "tiny_classifier (speech_emotion)")
    assert plot is not None and plot.size[0] > 500 and "speech segments" in status
    assert not list(tmp_path.glob("serhub-demo-*"))


def test_transcript_is_read_from_the_answer():
    assert app.transcript_of("| ASR: press one now | Emotion: happy") == "press one now"
    assert app.transcript_of("| ASR: press one now") == "press one now"  # stopped before the label
    assert app.transcript_of("free text") == ""
    assert app.transcript_of(None) == ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def running_app(models_root):
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, str(ROOT / "app.py"), "--models", str(models_root), "--port", str(port), "--long_input", "12"]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{process.stdout.read()}")
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        raise RuntimeError("app.py did not answer within 180 s")
    yield url
    process.terminate()
    process.wait(timeout=30)


def _browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("the browser test needs Debian's chromium: run ./setup.sh (it installs it)")
    return sync_playwright(), chromium


def test_page_in_a_real_browser_shows_label_and_timeline(running_app, models_root, long_wav, tmp_path):
    expected = app.analyse(str(long_wav), str(models_root / "tiny_classifier"), plot_dir=tmp_path)["labels"]
    top = max(expected, key=expected.get)
    manager, chromium = _browser()
    with manager as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page()
        page.goto(running_app)
        expect(page.locator("#model input")).to_have_value("tiny_audio_llm (audio_llm)", timeout=30_000)
        page.locator("#model input").click()
        page.get_by_role("option", name="tiny_classifier (speech_emotion)").click()
        page.locator("input[type=file]").first.set_input_files(str(long_wav))
        page.locator("audio").first.wait_for(state="attached", timeout=60_000)  # uploaded
        page.locator("#classify").click()
        heading = page.locator("#labels h2").first
        heading.wait_for(timeout=120_000)
        assert heading.inner_text().strip() == top
        shown = page.locator("#labels").inner_text()
        for label in expected:
            assert label in shown
        image = page.locator("#timeline img").first
        image.wait_for(timeout=60_000)
        page.wait_for_function(
            "() => { const i = document.querySelector('#timeline img'); return i && i.complete && i.naturalWidth > 0 }",
            timeout=30_000,
        )
        assert image.evaluate("i => i.naturalWidth") > 500
        assert "speech segments" in page.locator("#status").inner_text()
        browser.close()


def test_page_shows_the_audio_llm_answer_and_only_the_operators_models(running_app, short_wav, tmp_path):
    manager, chromium = _browser()
    with manager as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page()
        page.goto(running_app)
        page.locator("input[type=file]").first.set_input_files(str(short_wav))
        page.locator("audio").first.wait_for(state="attached", timeout=60_000)  # uploaded
        page.locator("#classify").click()  # the first model: the tiny audio-LLM
        expect(page.locator("#answer textarea")).to_have_value(re.compile(r"^\| ASR:"), timeout=120_000)
        assert page.locator("#labels h2").first.inner_text().strip() in LABELS
        # visitors pick among the operator's models: no box to type a folder or Hub id
        assert page.get_by_label("or a model folder / Hub id").count() == 0
        page.locator("#model input").click()
        options = page.get_by_role("option").all_inner_texts()  # the chosen one carries a check mark
        assert len(options) == 2
        assert {
            o for o in options if "tiny_audio_llm (audio_llm)" in o or "tiny_classifier (speech_emotion)" in o
        } == set(options)
        browser.close()
