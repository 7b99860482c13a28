"""The dataset card and the command line every corpus builder shares."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from .common import (
    builder_argument_parser,
    check_output_dir,
    describe,
    save_dataset_dict,
)
from .corpus_problems import CorpusError, format_problems, plural
from .corpus_spec import LABEL_SET_CHOICES, LABEL_SETS, SHARED_EMOTIONS, CorpusSpec

if TYPE_CHECKING:
    from .corpus_tools import BuildResult

# The shared label sets are nested prefixes of one list: "4" is the classic IEMOCAP set, "6" is
# the set CREMA-D and EmoSPeech define (Ekman's basic emotions without surprise, plus neutral),
# "8" is MSP-Podcast's challenge set.


CARD = """---
license: {license}
language: [{language}]
task_categories: [audio-classification]
tags: [speech-emotion-recognition, serhub]
pretty_name: {name} (serhub)
---

# {name}

{about}

Built by serhub: `python -m serhub.datasets_scripts.{module} --raw_dir RAW --output_dir DIR` with {options}.
Audio is decoded, mixed down to mono and resampled to 16 kHz (16-bit WAV in the `audio` column).
Columns follow serhub's common schema: `audio`, `emotion`, `transcript`, `speaker_id`,
`utterance_id`{optional}. `manifest.json` holds each split's clip count, sha256 hashes of its clip
ids and speakers (`serhub evaluate` reports the same hash of the split it scores) and label counts,
and any speaker or transcript shared between splits.

## Labels

{labels}
{excluded}{skipped}{notes}
## Statistics

{table}

## Licence

{license_note}

## Citation

```bibtex
{citation}
```
"""


def render_card(result: BuildResult) -> str:
    spec = result.spec
    if result.label_set == "native":
        labels = f"`emotion` has the corpus' own classes, in its order: {', '.join(result.dataset_dict[next(iter(result.dataset_dict))].features['emotion'].names)}."
    else:
        mapping = [f"| {name} | {spec.to_shared.get(name, '(left out)')} |" for name in spec.labels.values()]
        labels = (
            f"`emotion` is serhub's shared {result.label_set}-class set "
            f"({', '.join(LABEL_SETS[result.label_set])}); `native_emotion` keeps the corpus' own class.\n\n"
            "| corpus class | shared class |\n|---|---|\n" + "\n".join(mapping)
        )
    excluded = ""
    if result.excluded:
        excluded = "\nLeft out by design:\n\n" + "\n".join(
            f"- {plural(n, 'utterance')} {r}" for r, n in result.excluded.items()
        )
        excluded += "\n"
    skipped = ""
    if result.skipped:
        skipped = (
            f"\n## Skipped items\n\n{len(result.skipped)} problem(s) were found and the affected utterances "
            f"left out (--skip_bad):\n\n{format_problems(result.skipped, indent='')}\n"
        )
    notes = "\n## Notes\n\n" + "\n".join(f"- {n}" for n in result.notes) + "\n" if result.notes else ""
    options = ", ".join(f"`{k}={v}`" for k, v in result.options.items())
    optional = "".join(f", `{c}`" for c in (*spec.optional_columns, "language", *spec.extra_features))
    if result.label_set != "native":
        optional += ", `native_emotion`"
    return CARD.format(
        license=spec.license,
        language=spec.language,
        name=spec.name,
        about=spec.about.strip(),
        module=spec.module,
        options=options,
        optional=optional,
        labels=labels,
        excluded=excluded,
        skipped=skipped,
        notes=notes,
        table=describe(result.dataset_dict),
        license_note=spec.license_note.strip(),
        citation=spec.citation.strip(),
    )


def push_to_hub(dataset_dict, repo_id: str, card: str) -> None:
    """Upload to a private Hub dataset repo. The card goes first, so that ``push_to_hub`` adds its
    metadata (configs, dataset_info) to this README instead of writing a bare one."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=True, exist_ok=True)
    api.upload_file(
        path_or_fileobj=card.encode("utf-8"), path_in_repo="README.md", repo_id=repo_id, repo_type="dataset"
    )
    dataset_dict.push_to_hub(repo_id, private=True)


COMMON_OPTIONS = ("label_set", "keep_all_labels", "skip_bad", "num_workers", "cache_dir")


def corpus_argument_parser(spec: CorpusSpec, doc: str) -> argparse.ArgumentParser:
    """The options every corpus builder has; builders add their own."""
    parser = builder_argument_parser(doc.strip().splitlines()[0])
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "\n".join(doc.strip().splitlines()[1:]).strip()  # the layout --raw_dir must have
    parser.add_argument(
        "--raw_dir", required=True, help=f"the {spec.name} folder as distributed: {spec.layout_hint}"
    )
    parser.add_argument(
        "--label_set",
        choices=LABEL_SET_CHOICES,
        default="native",
        help="native: the corpus' own classes; 4/6/8: serhub's shared set "
        f"({', '.join(SHARED_EMOTIONS)}: the first 4, 6 or all), keeping the corpus' class in native_emotion",
    )
    if spec.excluded_by_default:
        parser.add_argument(
            "--keep_all_labels",
            action="store_true",
            help=f"also keep {', '.join(spec.excluded_by_default)} (left out by default)",
        )
    parser.add_argument(
        "--skip_bad",
        action="store_true",
        help="leave out utterances with problems (missing/unreadable audio, unknown labels, duplicates) "
        "instead of failing; the card lists them",
    )
    parser.add_argument(
        "--push_to_hub", metavar="REPO", help="also upload the dataset to this private Hub repo"
    )
    parser.add_argument("--num_workers", type=int, default=4, help="threads decoding audio")
    parser.add_argument("--cache_dir", help="Arrow cache of the decoded audio (default: the datasets cache)")
    return parser


def run_cli(
    args: argparse.Namespace, build_with_report: Callable[..., BuildResult], **options
) -> BuildResult:
    """Build with the common options plus the builder's ``options``, print, save (and push)."""
    check_output_dir(args.output_dir, args.overwrite)  # before the slow part
    common = {name: getattr(args, name) for name in COMMON_OPTIONS if hasattr(args, name)}
    try:
        result = build_with_report(args.raw_dir, **common, **options)
    except CorpusError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(result.summary())
    card = result.card()
    path = save_dataset_dict(result.dataset_dict, args.output_dir, card=card, overwrite=args.overwrite)
    print(f"saved to {path}")
    if args.push_to_hub:
        push_to_hub(result.dataset_dict, args.push_to_hub, card)
        print(f"pushed to the private dataset repo {args.push_to_hub}")
    return result
