"""Does a trained audio-LLM transcribe speech from voices and sentences it never heard?

    HF_HUB_OFFLINE=1 python benchmarks/heldout_asr.py --models outputs/emosllm outputs/emosllm-ctc_path \\
        [--version 2 --dataset data/synthetic_emotions_v2_heldout] [--max_clips 120]

Each model (an ``AudioLLMForConditionalGeneration`` folder, as emosllm saves it) writes the transcript
of every clip with the ASR prompt, greedily, as the recipe scores its held-out telephone prompts; the
clips are ``benchmarks/heldout_speech.py``'s: version 1, six espeak-ng voices and sentences that no
split of ``synthetic_emotions`` holds (synthesised here), or version 2's ``heldout`` split (voices and
sentence clauses that no split of ``synthetic_emotions_v2`` uses). Prints WER overall and per voice
with a few transcripts, and writes them as JSON to ``--output_json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from heldout_speech import heldout_clips, heldout_clips_v2
from serhub.metrics.asr import word_error_rate
from serhub.recipes.reporting import write_json


def transcribe(
    model_dir: str, audio, batch_size: int, max_new_tokens: int
) -> tuple[list[str], list[str] | None]:
    """The model's transcripts, and for a ``ctc_path`` model what its words slots held (its CTC head's
    best paths, decoded), else None."""
    import torch
    from serhub.modeling import AudioLLMForConditionalGeneration, AudioLLMProcessor
    from tqdm.auto import tqdm

    model = AudioLLMForConditionalGeneration.from_pretrained(model_dir).eval()
    processor = AudioLLMProcessor.from_pretrained(model_dir)
    reads_words = hasattr(model.connector, "best_path_ids")
    texts, paths = [], []
    for start in tqdm(range(0, len(audio), batch_size), desc=f"transcribing ({Path(model_dir).name})"):
        inputs = processor(
            audio=audio[start : start + batch_size], task="asr", prompt_index=0, sampling_rate=16000
        )
        with torch.no_grad():  # the frozen encoder runs once: generation and the words read its outputs
            clips = inputs.pop("input_values", None)
            clips = inputs.pop("input_features", None) if clips is None else clips
            states, mask = model.encode(clips, inputs.pop("audio_attention_mask"))
            out = model.generate(
                **inputs, encoder_hidden_states=states, encoder_attention_mask=mask,
                max_new_tokens=max_new_tokens, do_sample=False,
            )  # fmt: skip
            if reads_words:
                ids = model.connector.best_path_ids(
                    states, mask.bool(), model.get_input_embeddings().weight, [processor.audio_token_id]
                )
                paths += processor.batch_decode(ids, skip_special_tokens=True)
        texts += processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return [t.strip() for t in texts], ([p.strip() for p in paths] if reads_words else None)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", required=True, help="audio-LLM folders that write transcripts")
    parser.add_argument("--version", type=int, choices=(1, 2), default=1)
    parser.add_argument("--dataset", type=Path, help="version 2: a built heldout split (else synthesised)")
    parser.add_argument("--clips_per_speaker", type=int, default=10)
    parser.add_argument("--corpus_seed", type=int, default=0, help="version 2: the corpus's seed")
    parser.add_argument("--seed", type=int, default=1234, help="version 1: the clips' seed")
    parser.add_argument("--max_clips", type=int, default=0, help="score the first N clips only (0: all)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_new_tokens", type=int, default=48)
    parser.add_argument("--output_json", default="benchmarks/results/heldout_asr.json")
    args = parser.parse_args(argv)

    if args.version == 2:
        audio, _, speakers, references = heldout_clips_v2(
            args.clips_per_speaker, args.corpus_seed, args.dataset
        )
    else:
        audio, _, speakers, references = heldout_clips(args.clips_per_speaker, args.seed)
    if args.max_clips:
        audio, speakers, references = (
            audio[: args.max_clips],
            speakers[: args.max_clips],
            references[: args.max_clips],
        )
    results = {"version": args.version, "clips": len(audio), "models": {}}
    for model_dir in args.models:
        start = time.time()
        hypotheses, paths = transcribe(model_dir, audio, args.batch_size, args.max_new_tokens)
        per_voice = {
            voice: round(
                word_error_rate(
                    [h for h, s in zip(hypotheses, speakers) if s == voice],
                    [r for r, s in zip(references, speakers) if s == voice],
                ),
                3,
            )
            for voice in sorted(set(speakers))
        }
        wer = word_error_rate(hypotheses, references)
        name = model_dir if not Path(model_dir).is_absolute() else "/".join(Path(model_dir).parts[-2:])
        results["models"][name] = {
            "wer": round(wer, 3),
            "per_voice_wer": per_voice,
            "examples": [{"reference": r, "hypothesis": h} for r, h in list(zip(references, hypotheses))[:5]],
            "seconds": round(time.time() - start, 1),
        }
        if paths is not None:  # what the LLM read: its CTC head's words
            results["models"][name]["ctc_path_wer"] = round(word_error_rate(paths, references), 3)
            print(f"  its CTC head's words alone: WER {word_error_rate(paths, references):.3f}")
        print(f"{model_dir}: WER {wer:.3f} on {len(audio)} clips; per voice {per_voice}")
        for r, h in list(zip(references, hypotheses))[:3]:
            print(f"  ref: {r}\n  hyp: {h}")
    write_json(args.output_json, results, portable_paths=True)
    return results


if __name__ == "__main__":
    main()
