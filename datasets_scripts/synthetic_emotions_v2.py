"""Version 2 of serhub's synthetic espeak-ng corpus: emotion that must transfer to unseen voices.

    python -m serhub.datasets_scripts.synthetic_emotions_v2 --output_dir data/synthetic_emotions_v2
    python -m serhub.datasets_scripts.synthetic_emotions_v2 --splits heldout --output_dir data/synthetic_emotions_v2_heldout

Embedded as ``synthetic_emotions_v2`` (``--dataset_name_or_path synthetic_emotions_v2`` in every
recipe, ``serhub evaluate --dataset synthetic_emotions_v2``). It keeps version 1's emotion model
(:func:`synthetic_emotions.plan_clip`) and class priors, but cannot be learnt by heart (issue 24): at
least 60 training voices (~95 espeak-ng variants x 8 accents), validation and test voices whose
variants (and sound-alike families) are in no other split, sentences built from templates whose
clauses are in no other split (the build checks both and fails on a leak), and every clip trimmed,
set to a random level and padded with random silence over a noise floor, so that neither its
silences nor its loudness carry the label (its length only through the speaking rate). A fourth
split, ``heldout`` (voices and sentences that no split of the corpus uses), is built only when asked
for, for held-out benchmarks.
"""

from __future__ import annotations

import io
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .common import (
    SAMPLING_RATE,
    builder_argument_parser,
    check_output_dir,
    check_speaker_independent,
    describe,
    encode_wav,
    save_dataset_dict,
    ser_features,
)
from .descriptors import active_frames_db
from .synthetic_emotions import CLASS_PRIORS, EMOTIONS, ClipSpec, _espeak_binary, plan_clip, synthesize

# 1: names the embedded corpus's cache folder (recipes/data.embedded_dataset_path); raise it when
# the build's output changes
CORPUS_VERSION = 1

ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-us-nyc",
    "en-029",
)
# espeak-ng 1.51's English-usable variants (``espeak-ng --voices=variant``) and their listed gender,
# less those in EXCLUDED_VARIANTS.
VARIANTS = {
    **dict.fromkeys(
        "adam Alex Andy antonio benjamin boris caleb david Denis Diogo ed edward edward2 Gene Gene2 "
        "gustave Henrique Hugo iven iven2 iven3 iven4 Jacky john kaukovalta Lee marcelo Marco Mario "
        "max Michael michel miguel Mike Nguyen pablo paul pedro quincy RicishayMax RicishayMax2 "
        "RicishayMax3 rob robert robosoft robosoft2 robosoft3 robosoft4 robosoft5 robosoft6 robosoft7 "
        "robosoft8 Storm Tweaky UniRobot zac AnxiousAndy fast grandpa klatt2 klatt3 klatt4 klatt5 m1 "
        "m2 m3 m4 m5 m6 m7 m8 norbert sandro shelby travis victor croak".split(),
        "male",
    ),
    **dict.fromkeys(
        "Alicia Andrea Annie aunty belinda linda steph steph2 steph3 anika anikaRobot f1 f2 f3 f4 f5 "
        "grandma".split(),
        "female",
    ),
}
EXCLUDED_VARIANTS = {
    "whisper": "unvoiced, so pitch carries nothing",
    "whisperf": "unvoiced, so pitch carries nothing",
    "announcer": "ignores SSML pitch (+30 % gives +5 % f0)",
    "Demonic": "ignores SSML pitch (+30 % gives +4 % f0)",
    "klatt": "the same waveform as caleb",
    "klatt6": "the same waveform as caleb",
    "Mr serious": "a space in its name",
}
# Variants that sound alike (one family, e.g. steph/steph2/steph3 differ in level only; others by a
# level-independent mean-spectrum distance): a family stays in one split, so that a test voice is
# never a training voice at another volume.
VARIANT_FAMILIES = (
    ("adam", "caleb", "klatt2", "klatt3", "klatt4", "klatt5"),
    ("benjamin", "edward", "edward2"),
    ("iven", "iven2", "iven3", "iven4"),
    ("steph", "steph2", "steph3"),
    ("robosoft", "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft6", "robosoft7", "robosoft8"),
    ("RicishayMax", "RicishayMax2", "RicishayMax3"),
    ("Gene", "Gene2"),
    ("anika", "anikaRobot"),
    ("Henrique", "Hugo"),
    ("Mario", "Michael"),
    ("michel", "miguel"),
    ("rob", "robert"),
    ("fast", "Storm"),  # fast is the unvaried voice; Storm changes its formants by 5 %
)
# Single variants drawn for each held-out split (families all train); each held-out variant (and each
# female training variant) is spoken in ACCENTS_PER_VARIANT accents, each male training variant in one.
HELDOUT_VARIANTS = {"validation": 10, "test": 10, "heldout": 10}
ACCENTS_PER_VARIANT = 2
MIN_TRAIN_VOICES = 60
SPLITS = ("train", "validation", "test")  # the corpus; "heldout" is built only when asked for
ALL_SPLITS = (*SPLITS, "heldout")

# Post-processing of every clip (independent of the class): speech level (mean power of the active
# frames), leading / trailing silence, white noise floor (RMS).
LEVEL_DBFS = (-38.0, -20.0)
SILENCE_S = (0.05, 1.0)
NOISE_FLOOR_DBFS = (-80.0, -60.0)
PEAK = 0.95

# Sentence banks: templates x word lists. The *clauses* (what happens) are partitioned between the
# splits, so a validation or test sentence is new content, not a training sentence with another time.
SUBJECTS = (
    "The manager", "My neighbour", "Our driver", "The new teacher", "Her cousin", "The receptionist",
    "His landlord", "The engineer", "My sister", "The delivery man", "Our accountant", "The librarian",
    "The nurse on duty", "Their gardener", "The bus driver", "My colleague", "The postman", "Your uncle",
    "The shop assistant", "The doctor", "Our coach", "The waiter", "My grandfather", "The student",
)  # fmt: skip
NEUTRAL_CLAUSES = (
    "moved the meeting to the second floor", "left the keys on the kitchen table",
    "printed two copies of the schedule", "parked the car near the bakery",
    "ordered a new chair for the office", "sent the invoice to the main address",
    "checked the tyres before the trip", "wrote the phone number on a card",
    "opened the windows in the hall", "put the boxes in the storage room",
    "changed the password for the printer", "carried the chairs into the garden",
    "booked a table for six people", "counted the forms at the front desk",
    "painted the fence behind the house", "returned the books to the library",
    "bought milk and bread at the market", "cleaned the shelves in the basement",
    "fixed the clock in the waiting room", "read the instructions on the label",
    "signed the papers at the bank", "watered the plants on the balcony",
    "measured the width of the doorway", "closed the gate at the end of the road",
    "collected the tickets at the entrance", "folded the towels in the laundry room",
    "moved the piano to the other wall", "sorted the letters by their dates",
    "copied the notes from the whiteboard", "took the early train to the city",
)  # fmt: skip
TIMES = (
    "on Monday morning", "after lunch", "last Tuesday", "this afternoon", "before the weekend",
    "at nine o'clock", "yesterday evening", "on the first of May", "around noon", "early this morning",
    "later in the week", "at half past four",
)  # fmt: skip
PEOPLE = (
    "my brother", "our neighbour", "the whole team", "my best friend", "your sister",
    "the new manager", "my parents", "our teacher", "the children", "my old roommate",
)  # fmt: skip
# emotion: (openers, clauses with {who}, final punctuation)
EMOTIONAL = {
    "happy": (
        ("What wonderful news,", "I am so happy,", "This is fantastic,", "Oh, how lovely,",
         "I could dance right now,", "Best day ever,", "I am thrilled,", "How delightful,"),
        ("{who} won the big prize", "{who} got the dream job", "{who} came home safe and smiling",
         "{who} threw us a lovely surprise party", "{who} passed every exam with top marks",
         "{who} bought us the perfect present", "{who} finished the marathon in record time",
         "{who} found the puppy we adored", "{who} booked us a holiday by the sea",
         "{who} sang our favourite song beautifully", "{who} cooked the most delicious dinner",
         "{who} made everyone laugh all evening"),
        "!",
    ),
    "sad": (
        ("I feel so empty,", "It breaks my heart,", "I cannot stop crying,", "Everything feels grey,",
         "I am so sorry to say,", "It hurts so much,", "I feel so alone now,", "Nothing will be the same,"),
        ("{who} moved far away for good", "{who} lost the old family house", "{who} never called me back",
         "{who} missed the funeral", "{who} gave away my grandmother's letters",
         "{who} forgot my birthday again", "{who} lost everything in the flood",
         "{who} said goodbye forever", "{who} cancelled the last visit", "{who} stopped writing to me",
         "{who} sold the farm we loved", "{who} left without a word"),
        ".",
    ),
    "angry": (
        ("This is outrageous,", "I am furious,", "How dare they,", "I have had enough,",
         "This is completely unacceptable,", "I am sick of this,", "Unbelievable, I am livid,",
         "Stop making excuses,"),
        ("{who} broke my laptop on purpose", "{who} lied to my face again", "{who} wasted the whole budget",
         "{who} ignored every single warning", "{who} stole the credit for my work",
         "{who} blocked my car in the driveway", "{who} ruined the meeting with insults",
         "{who} threw my things on the floor", "{who} shouted at the staff for nothing",
         "{who} cheated us out of our money", "{who} slammed the door in my face",
         "{who} read my private messages"),
        "!",
    ),
    "fear": (
        ("I am terrified,", "Please help me,", "I am so scared,", "Something is terribly wrong,",
         "I cannot breathe,", "Oh no, we are in danger,", "I am shaking all over,", "Please hurry,"),
        ("{who} heard footsteps in the dark hallway", "{who} saw a stranger at the window",
         "{who} vanished near the old bridge", "{who} got lost in the freezing forest",
         "{who} saw someone following us", "{who} found the back door forced open",
         "{who} fell through the thin ice", "{who} heard a scream from the cellar",
         "{who} spotted smoke in the stairwell", "{who} got a threatening phone call",
         "{who} felt the ground shaking", "{who} saw the brakes fail on the hill"),
        "!",
    ),
    "surprise": (
        ("No way,", "Wow, I cannot believe it,", "Really,", "What? Seriously,", "Oh my goodness,",
         "I never expected this,", "Wait, what,", "You are kidding me,"),
        ("{who} got married in secret", "{who} won the lottery overnight", "{who} flew to Japan on a whim",
         "{who} bought a castle in Scotland", "{who} met the president yesterday",
         "{who} learned to fly a plane", "{who} turned up at my door after ten years",
         "{who} sold the company this morning", "{who} found a fortune in the attic",
         "{who} appeared on the evening news", "{who} adopted three kittens at once",
         "{who} built a boat in the garage"),
        "?",
    ),
}  # fmt: skip
# share of each category's clauses per split (train gets the rest)
CLAUSE_SHARE = {"validation": 1 / 6, "test": 1 / 6, "heldout": 1 / 6}


def _partition(items, shares: dict[str, float], rng: np.random.Generator) -> dict[str, list]:
    """Shuffle ``items`` and cut off round(share * n) (at least 1) for each named part; the rest is
    ``train``."""
    order = [items[i] for i in rng.permutation(len(items))]
    parts, start = {}, 0
    for name, share in shares.items():
        size = max(1, round(share * len(items)))
        parts[name] = order[start : start + size]
        start += size
    parts["train"] = order[start:]
    if not parts["train"]:
        raise ValueError(f"nothing left for train after the held-out shares {shares} of {len(items)} items")
    return parts


def split_sentence_banks(seed: int = 0) -> dict[str, tuple[tuple[str, ...], dict[str, tuple[str, ...]]]]:
    """``{split: (neutral sentences, {emotion: sentences})}`` for train / validation / test / heldout,
    built from disjoint clause sets (so no sentence is in two splits). ``heldout`` is never built
    into the corpus: it is for benchmarks of unseen sentences."""
    rng = np.random.default_rng([seed, 21])
    neutral = _partition(NEUTRAL_CLAUSES, CLAUSE_SHARE, rng)
    emotional = {e: _partition(v[1], CLAUSE_SHARE, rng) for e, v in EMOTIONAL.items()}
    banks = {}
    for split in ("train", "validation", "test", "heldout"):
        neutral_bank = tuple(f"{s} {c} {t}." for s in SUBJECTS for c in neutral[split] for t in TIMES)
        emotional_banks = {"neutral": neutral_bank}
        for emotion, (openers, _, end) in EMOTIONAL.items():
            emotional_banks[emotion] = tuple(
                f"{o} {c.format(who=p)}{end}"
                for o in openers
                for c in emotional[emotion][split]
                for p in PEOPLE
            )
        banks[split] = (neutral_bank, emotional_banks)
    return banks


def split_voices(seed: int = 0) -> dict[str, list[tuple[str, str, str]]]:
    """``{split: [(accent, variant, gender), ...]}`` for train / validation / test / heldout: variants
    (and their families) disjoint between splits, gender-proportional held-out splits, accents dealt
    round robin. ``heldout`` voices are never built into the corpus: they are for benchmarks."""
    rng = np.random.default_rng([seed, 22])
    in_family = {v for family in VARIANT_FAMILIES for v in family}
    singles = {
        g: [v for v in VARIANTS if v not in in_family and VARIANTS[v] == g] for g in ("female", "male")
    }
    # interleave the genders in proportion, each in a seeded order, then deal the held-out splits
    ranked = []
    for gender, names in singles.items():
        names = [names[i] for i in rng.permutation(len(names))]
        ranked += [((k + 0.5) / len(names), gender, name) for k, name in enumerate(names)]
    order = [name for *_, name in sorted(ranked)]
    variants, start = {}, 0
    for split, count in HELDOUT_VARIANTS.items():
        variants[split] = order[start : start + count]
        start += count
    variants["train"] = order[start:] + sorted(in_family)
    accents = [ACCENTS[i] for i in rng.permutation(len(ACCENTS))]
    voices, k = {}, 0
    for split in ("train", "validation", "test", "heldout"):
        voices[split] = []
        for variant in variants[split]:
            # espeak-ng has few female variants: in training each is spoken in two accents
            per_variant = 1 if split == "train" and VARIANTS[variant] == "male" else ACCENTS_PER_VARIANT
            for _ in range(per_variant):
                voices[split].append((accents[k % len(accents)], variant, VARIANTS[variant]))
                k += 1
    if len(voices["train"]) < MIN_TRAIN_VOICES:
        raise ValueError(f"{len(voices['train'])} training voices, fewer than {MIN_TRAIN_VOICES}")
    return voices


@dataclass(frozen=True)
class CorpusPlan:
    """Every clip of a version-2 corpus: ``voices`` indexes ``ClipSpec.speaker``; ``splits`` maps a
    split to its voice indices; ``finish`` holds each clip's (level dBFS, leading s, trailing s,
    noise floor dBFS), in clip order."""

    voices: tuple[tuple[str, str, str], ...]
    splits: dict[str, list[int]]
    clips: tuple[ClipSpec, ...]
    finish: tuple[tuple[float, float, float, float], ...]


def _split_labels(num_clips: int, rng: np.random.Generator) -> list[str]:
    """Class labels of a split in CLASS_PRIORS (largest remainder), shuffled."""
    raw = np.asarray(CLASS_PRIORS) * num_clips
    counts = np.floor(raw).astype(int)
    counts[np.argsort(raw - counts)[::-1][: num_clips - counts.sum()]] += 1
    labels = [e for e, c in zip(EMOTIONS, counts) for _ in range(c)]
    rng.shuffle(labels)
    return labels


def plan_clips(
    clips_per_voice: int = 12,
    emotional_text_fraction: float = 0.5,
    seed: int = 0,
    splits: tuple[str, ...] = SPLITS,
) -> CorpusPlan:
    """Decide every clip of version 2 (voice, emotion, sentence, prosody, level and silences) from
    seeded generators. Class counts follow CLASS_PRIORS per split (not per voice, so a voice may
    lack the rarest class). ``splits=("heldout",)`` plans speech from the voices and sentences that
    no split of the corpus uses, for held-out benchmarks."""
    unknown = [s for s in splits if s not in ALL_SPLITS]
    if unknown or not splits:
        raise ValueError(f"splits must be some of {ALL_SPLITS}; found {splits}")
    if not 0.0 <= emotional_text_fraction <= 1.0:
        raise ValueError(f"emotional_text_fraction must be in [0, 1], got {emotional_text_fraction}")
    if clips_per_voice < 1:
        raise ValueError(f"clips_per_voice must be >= 1, got {clips_per_voice}")
    rng = np.random.default_rng([seed, 2])
    voices_of = split_voices(seed)
    banks = split_sentence_banks(seed)
    voices, members, clips = [], {}, []
    for split in splits:
        members[split] = list(range(len(voices), len(voices) + len(voices_of[split])))
        voices += voices_of[split]
        labels = _split_labels(clips_per_voice * len(voices_of[split]), rng)
        neutral_bank, emotional_banks = banks[split]
        for n, s in enumerate(members[split]):
            speaker_pitch = rng.normal(0.0, 8.0)  # as version 1
            speaker_rate = rng.normal(0.0, 5.0)
            for k, emotion in enumerate(labels[n * clips_per_voice : (n + 1) * clips_per_voice]):
                utterance_id = f"synth2_{split}_v{s:03d}_{k:03d}"
                clips.append(
                    plan_clip(
                        rng,
                        utterance_id,
                        s,
                        emotion,
                        emotional_text_fraction,
                        neutral_bank,
                        emotional_banks,
                        speaker_pitch,
                        speaker_rate,
                    )
                )
    # a separate stream: the presentation of a clip never changes what is said or how
    finish_rng = np.random.default_rng([seed, 3])
    finish = tuple(
        (
            float(finish_rng.uniform(*LEVEL_DBFS)),
            float(finish_rng.uniform(*SILENCE_S)),
            float(finish_rng.uniform(*SILENCE_S)),
            float(finish_rng.uniform(*NOISE_FLOOR_DBFS)),
        )
        for _ in clips
    )
    return CorpusPlan(tuple(voices), members, tuple(clips), finish)


def _speech_span(audio: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> tuple[int, int]:
    """First and last sample of the 10 ms frames within 40 dB of the loudest frame and 12 dB above
    the noise floor (the quietest 5 % of frames)."""
    hop = int(0.010 * sampling_rate)
    frames = audio[: audio.size // hop * hop].reshape(-1, hop)
    if frames.size == 0:
        return 0, audio.size
    db = 10.0 * np.log10(np.maximum((frames.astype(np.float64) ** 2).mean(axis=1), 1e-12))
    active = np.flatnonzero(db > max(db.max() - 40.0, np.percentile(db, 5) + 12.0, -70.0))
    if active.size == 0:
        return 0, audio.size
    return int(active[0] * hop), int((active[-1] + 1) * hop)


def speech_level_db(audio: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> float:
    """Mean power (dBFS) of the frames that hold speech (``descriptors.active_frames_db``)."""
    db = active_frames_db(audio, sampling_rate)
    return float(10.0 * np.log10(np.mean(10.0 ** (db / 10.0)))) if db.size else float("-inf")


def finish_clip(
    speech: np.ndarray,
    level_dbfs: float,
    lead_s: float,
    trail_s: float,
    noise_floor_dbfs: float,
    noise_seed,
    sampling_rate: int = SAMPLING_RATE,
) -> np.ndarray:
    """Trim espeak-ng's own silence, set the speech level (peak at most PEAK), pad with
    ``lead_s`` / ``trail_s`` of silence and add a white noise floor over the whole clip."""
    start, end = _speech_span(speech, sampling_rate)
    speech = speech[start:end].astype(np.float64)
    gain = 10.0 ** ((level_dbfs - speech_level_db(speech, sampling_rate)) / 20.0)
    peak = np.abs(speech).max() * gain
    if peak > PEAK:  # a loud target on a peaky clip: lower it rather than clip
        gain *= PEAK / peak
    lead, trail = round(lead_s * sampling_rate), round(trail_s * sampling_rate)
    clip = np.concatenate([np.zeros(lead), speech * gain, np.zeros(trail)])
    noise = np.random.default_rng(noise_seed).standard_normal(clip.size)
    clip += noise * 10.0 ** (noise_floor_dbfs / 20.0)
    return np.clip(clip, -1.0, 1.0).astype(np.float32)


def _variant(speaker_id: str) -> str:
    return speaker_id.split("+", 1)[1] if "+" in speaker_id else speaker_id


def _normalise(text: str) -> str:
    return " ".join("".join(ch for ch in text.lower() if ch.isalnum() or ch.isspace()).split())


def leakage_report(dataset_dict, train_split: str = "train") -> dict:
    """Overlaps between splits of voices (``speaker_id``), variants (the part after "+", so one
    variant in two accents counts) and sentences (case and punctuation ignored): every count must
    be 0. Also the number of distinct voices / variants / accents / sentences per split."""
    columns = {s: (dataset_dict[s]["speaker_id"], dataset_dict[s]["transcript"]) for s in dataset_dict}
    sets = {
        s: {
            "voices": set(speakers),
            "variants": {_variant(v) for v in speakers},
            "accents": {v.split("+", 1)[0] for v in speakers},
            "sentences": {_normalise(t) for t in texts},
        }
        for s, (speakers, texts) in columns.items()
    }
    splits = list(sets)
    overlaps = {}
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            for what in ("voices", "variants", "sentences"):
                shared = sorted(sets[a][what] & sets[b][what])
                overlaps[f"{what} {a}&{b}"] = shared
    return {
        "counts": {s: {what: len(values) for what, values in sets[s].items()} for s in splits},
        "overlaps": overlaps,
    }


def check_unseen(dataset_dict) -> dict:
    """Raise ``ValueError`` naming every voice, variant or sentence found in two splits (all of them
    at once); return the :func:`leakage_report` otherwise."""
    report = leakage_report(dataset_dict)
    leaks = [
        f"{name}: {', '.join(shared[:5])}" + (f" (+{len(shared) - 5})" if len(shared) > 5 else "")
        for name, shared in report["overlaps"].items()
        if shared
    ]
    if leaks:
        raise ValueError(
            "validation/test speech is not unseen; in two splits: " + "; ".join(leaks) + ". Rebuild with "
            "disjoint voices and sentence banks (split_voices / split_sentence_banks)."
        )
    return report


def acoustic_report(dataset_dict, split: str | None = None) -> dict[str, dict[str, float]]:
    """Per class: clips, mean (and sd) file duration, speech duration, leading / trailing silence and
    speech level (dBFS), measured from the stored audio of ``split`` (all splits when None)."""
    import datasets
    import soundfile as sf

    rows = {e: [] for e in dataset_dict[next(iter(dataset_dict))].features["emotion"].names}
    for name in [split] if split else list(dataset_dict):
        part = dataset_dict[name].cast_column("audio", datasets.Audio(decode=False))
        names = part.features["emotion"].names
        for audio, emotion in zip(part["audio"], part["emotion"]):
            wave, sr = sf.read(io.BytesIO(audio["bytes"]), dtype="float32")
            start, end = _speech_span(wave, sr)
            rows[names[emotion]].append(
                (
                    wave.size / sr,
                    (end - start) / sr,
                    start / sr,
                    (wave.size - end) / sr,
                    speech_level_db(wave[start:end], sr),
                )
            )
    report = {}
    for emotion, values in rows.items():
        v = np.asarray(values, dtype=float).reshape(-1, 5) if values else np.full((1, 5), np.nan)
        mean, sd = v.mean(axis=0), v.std(axis=0)
        report[emotion] = {
            "clips": len(values),
            "duration_s": mean[0],
            "duration_sd_s": sd[0],
            "speech_s": mean[1],
            "leading_silence_s": mean[2],
            "trailing_silence_s": mean[3],
            "level_dbfs": mean[4],
            "level_sd_db": sd[4],
        }
    return report


def format_report(dataset_dict) -> str:
    """The version-2 report (printed by the builder, written into the card): voices, variants,
    accents and sentences per split, overlaps (all 0, or the build fails), and per-class duration,
    silences and level of the training split (or the first one)."""
    leak = check_unseen(dataset_dict)
    splits = list(dataset_dict)
    first = "train" if "train" in dataset_dict else splits[0]
    lines = ["| per split | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    for what in ("voices", "variants", "accents", "sentences"):
        lines.append(
            f"| distinct {what} | " + " | ".join(str(leak["counts"][s][what]) for s in splits) + " |"
        )
    lines += ["", "| shared between splits | count |", "|---|---|"]
    lines += [f"| {name} | {len(shared)} |" for name, shared in leak["overlaps"].items()]
    lines += [
        "",
        f"Per class, {first} split (the silences and level do not follow the class; the speech duration,"
        " and so the file's, does through the speaking rate of the emotion model):",
        "",
        "| class | clips | file s (sd) | speech s | leading s | trailing s | level dBFS (sd) |",
        "|---|---|---|---|---|---|---|",
    ]
    for emotion, r in acoustic_report(dataset_dict, first).items():
        lines.append(
            f"| {emotion} | {r['clips']} | {r['duration_s']:.2f} ({r['duration_sd_s']:.2f}) | {r['speech_s']:.2f} "
            f"| {r['leading_silence_s']:.2f} | {r['trailing_silence_s']:.2f} | {r['level_dbfs']:.1f} ({r['level_sd_db']:.1f}) |"
        )
    return "\n".join(lines)


def _check_espeak_voices(binary: str) -> None:
    """Fail before synthesising when this espeak-ng lacks an accent or variant version 2 uses."""
    listed = {}
    for kind in ("en", "variant"):
        out = subprocess.run([binary, f"--voices={kind}"], capture_output=True, text=True, check=False).stdout
        listed[kind] = out
    variants = {line.split("!v/", 1)[1].strip() for line in listed["variant"].splitlines() if "!v/" in line}
    variants = {v.split("  ")[0].strip() for v in variants}
    accents = {line.split()[1] for line in listed["en"].splitlines()[1:] if len(line.split()) > 1}
    missing = sorted(set(VARIANTS) - variants) + sorted(set(ACCENTS) - accents)
    if missing:
        raise RuntimeError(
            f"this espeak-ng lacks voices the version-2 corpus uses: {missing}. It was designed on "
            "espeak-ng 1.51 (apt-get install espeak-ng espeak-ng-data); build version 1 (synthetic_emotions) instead."
        )


def build(
    clips_per_voice: int = 12,
    emotional_text_fraction: float = 0.5,
    seed: int = 0,
    num_workers: int = 4,
    splits: tuple[str, ...] = SPLITS,
):
    """Synthesise version 2 and return a checked ``DatasetDict`` (train / validation / test, or the
    ``splits`` asked for, e.g. ``("heldout",)`` for a held-out benchmark set): raises
    ``ValueError`` when a voice, variant or sentence is in two splits."""
    import dataclasses

    import datasets
    from tqdm.auto import tqdm

    binary = _espeak_binary()
    _check_espeak_voices(binary)
    plan = plan_clips(clips_per_voice, emotional_text_fraction, seed, splits)
    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        speech = list(
            tqdm(
                pool.map(lambda c: synthesize(c, binary, speakers=plan.voices), plan.clips),
                total=len(plan.clips),
                desc="espeak-ng",
                unit="clip",
            )
        )
    audio = [
        finish_clip(s, *finish, noise_seed=(seed, 4, i))
        for i, (s, finish) in enumerate(zip(speech, plan.finish))
    ]
    features = ser_features(
        EMOTIONS, optional=("gender", "arousal", "valence", "dominance", "language", "descriptors")
    )
    splits = {}
    for split, members in plan.splits.items():
        rows = [(c, a) for c, a in zip(plan.clips, audio) if c.speaker in members]
        voice = [plan.voices[c.speaker] for c, _ in rows]
        splits[split] = datasets.Dataset.from_dict(
            {
                "audio": [{"bytes": encode_wav(a), "path": f"{c.utterance_id}.wav"} for c, a in rows],
                "emotion": [EMOTIONS.index(c.emotion) for c, _ in rows],
                "transcript": [c.text for c, _ in rows],
                "speaker_id": [f"{accent}+{variant}" for accent, variant, _ in voice],
                "utterance_id": [c.utterance_id for c, _ in rows],
                "gender": [gender for *_, gender in voice],
                "arousal": [c.arousal for c, _ in rows],
                "valence": [c.valence for c, _ in rows],
                "dominance": [c.dominance for c, _ in rows],
                "language": ["en"] * len(rows),
                # the file's loudness is random, so the descriptors say nothing about it
                "descriptors": [
                    ", ".join(dataclasses.replace(c, volume=0.0).descriptors.split(", ")[:3]) for c, _ in rows
                ],
            },
            features=features,
        )
    dataset_dict = datasets.DatasetDict(splits)
    check_speaker_independent(dataset_dict)
    check_unseen(dataset_dict)
    return dataset_dict


CARD = """---
license: cc0-1.0
language: [en]
task_categories: [audio-classification]
tags: [speech-emotion-recognition, synthetic, espeak-ng, serhub]
pretty_name: serhub synthetic emotions v2
---

# serhub synthetic emotions, version 2

**Synthetic speech, made with espeak-ng by `datasets_scripts/synthetic_emotions_v2.py`.
Not real emotional speech; do not report results on it as emotion-recognition performance.**

The same emotion model as version 1 (prosody per class scaled by a random intensity and jittered,
words carrying the emotion in {emotional_pct:.0f} % of the emotional clips, the same class priors),
made hard to learn by heart: {train_voices} training voices (espeak-ng variants x {accents} English
accents); validation and test voices are variants never heard in training nor in each other, and
their sentences are built from clauses never used in training. Each clip is trimmed, set to a random
speech level ({level[0]:.0f} to {level[1]:.0f} dBFS), padded with {silence[0]:.2f} to {silence[1]:.2f} s of
silence at each end over a white noise floor, so neither the silences nor the loudness follow the
class, and the length only through the emotion model's speaking rate (the descriptors leave
loudness out). Voices and sentences kept out of every split (`split_voices(seed)["heldout"]`,
`split_sentence_banks(seed)["heldout"]`) are for held-out benchmarks.

Parameters: clips_per_voice={clips_per_voice}, emotional_text_fraction={emotional_text_fraction}, seed={seed}.

## Statistics

{table}

## Unseen voices and sentences, and what does not carry the class

{report}
"""


def dataset_card(
    dataset_dict, clips_per_voice: int = 12, emotional_text_fraction: float = 0.5, seed: int = 0
) -> str:
    first = "train" if "train" in dataset_dict else next(iter(dataset_dict))
    return CARD.format(
        emotional_pct=100.0 * emotional_text_fraction,
        train_voices=len(set(dataset_dict[first]["speaker_id"])),
        accents=len(ACCENTS),
        level=LEVEL_DBFS,
        silence=SILENCE_S,
        clips_per_voice=clips_per_voice,
        emotional_text_fraction=emotional_text_fraction,
        seed=seed,
        table=describe(dataset_dict),
        report=format_report(dataset_dict),
    )


def main(argv=None):
    parser = builder_argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--clips_per_voice", type=int, default=12)
    parser.add_argument(
        "--splits",
        nargs="+",
        choices=ALL_SPLITS,
        default=list(SPLITS),
        help="the splits to build; 'heldout' alone gives voices and sentences no split of the corpus uses",
    )
    parser.add_argument("--emotional_text_fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_workers", type=int, default=4)
    args = parser.parse_args(argv)
    check_output_dir(args.output_dir, args.overwrite)  # before the slow part
    settings = (args.clips_per_voice, args.emotional_text_fraction, args.seed)
    dataset_dict = build(*settings, args.num_workers, tuple(args.splits))
    card = dataset_card(dataset_dict, *settings)
    print(describe(dataset_dict))
    print(card[card.index("## Unseen voices") :])
    path = save_dataset_dict(dataset_dict, args.output_dir, card=card, overwrite=args.overwrite)
    print(f"saved to {path}")


if __name__ == "__main__":
    main()
