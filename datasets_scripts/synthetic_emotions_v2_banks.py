"""The voices and sentence banks of version 2 of the synthetic corpus (:mod:`synthetic_emotions_v2`):
espeak-ng variants x English accents dealt to disjoint splits (sound-alike families kept together), and
sentences built from templates whose clauses are partitioned between the splits, so that validation,
test and held-out speech is never a training voice or a training sentence."""

from __future__ import annotations

import numpy as np

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


__all__ = [
    "ACCENTS",
    "ALL_SPLITS",
    "EXCLUDED_VARIANTS",
    "SPLITS",
    "VARIANTS",
    "VARIANT_FAMILIES",
    "split_sentence_banks",
    "split_voices",
]
