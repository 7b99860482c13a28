"""The base class of the real-corpus builders: each corpus module declares its spec, layout, how it
reads its files and its own options; building, the report, the card and the command line come
from here. Speaker-independent splits drawn by serhub (:func:`assign_speaker_splits`) for corpora
without official ones."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .corpus_cli import corpus_argument_parser, run_cli
from .corpus_files import check_layout
from .corpus_problems import OUTSIDE_CORPUS, ProblemLog
from .corpus_spec import CorpusSpec, Utterance
from .corpus_tools import BuildResult, assemble


def inside_corpus(utterances: list[Utterance], raw: Path, log: ProblemLog) -> list[Utterance]:
    """The utterances whose audio file lies in the corpus folder; the others are reported (a label
    file naming ``../../x.wav`` or ``/etc/x.wav`` must not pull an outside file into a dataset).

    Judged on the path as written (``..`` collapsed, symbolic links not followed), so a corpus folder
    whose sub-folders are links to another disk still builds."""
    kept = []
    for u in utterances:
        audio = Path(os.path.normpath(os.path.join(raw, u.audio)))
        if audio == raw or raw not in audio.parents:
            log.add(
                OUTSIDE_CORPUS,
                u.source,
                f"the audio file it names ({os.path.relpath(audio, raw)}) is outside --raw_dir {raw}; "
                "file names in label files must stay inside the corpus folder",
                u.utterance_id,
            )
            continue
        kept.append(u)
    return kept


def assign_speaker_splits(
    utterances: Sequence[Utterance],
    log: ProblemLog,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> None:
    """Give every utterance the split of its speaker: whole speakers per split, genders balanced
    (:func:`splits.split_speakers`); the held-out speakers are noted for the card."""
    from .splits import split_speakers

    genders = {u.speaker_id: u.gender or "unknown" for u in utterances}
    fractions = {"train": 1.0 - validation_fraction - test_fraction, "validation": validation_fraction}
    fractions["test"] = test_fraction
    assignment = split_speakers(genders, fractions, seed=seed)
    for u in utterances:
        u.split = assignment[u.speaker_id]
    held_out = [
        f"{split}: {', '.join(sorted(k for k, v in assignment.items() if v == split))}"
        for split in ("validation", "test")
        if fractions[split] > 0
    ]
    log.note(f"speakers held out (seed {seed}): " + "; ".join(held_out))


class CorpusBuilder:
    """A real-corpus builder. A subclass holds only its corpus' knowledge: ``spec``, the files it
    expects (``layout``), how it reads them into :class:`Utterance` records with their splits
    (``read``), its own options (``options``: name -> default; ``add_arguments`` for the command
    line) and, if needed, option checks (``check_options``) and ``assemble`` settings
    (``assemble_settings``). It gets ``build_with_report``, ``build`` and ``main`` from here::

        BUILDER = MyCorpus()
        build_with_report, build = BUILDER.build_with_report, BUILDER.build

        def main(argv=None):
            BUILDER.main(argv, __doc__)
    """

    spec: CorpusSpec
    hint: str  # how to point --raw_dir at the corpus, for the layout error
    options: Mapping[str, Any] = {}
    card_options: tuple[str, ...] | None = None  # the options the card records (None: all)

    def layout(self, options: dict) -> dict:
        """``{glob pattern or tuple of them: what it is}`` that ``--raw_dir`` must contain."""
        raise NotImplementedError

    def read(self, raw: Path, log: ProblemLog, **options) -> list[Utterance]:
        """The corpus' utterances, each with its split, problems recorded in ``log``."""
        raise NotImplementedError

    def check_options(self, label_set: str, options: dict) -> None:
        """Refuse option values that make no sense (before anything is read)."""

    def assemble_settings(self, options: dict) -> dict:
        """Extra keyword arguments for :func:`assemble` (e.g. another ``to_shared`` mapping)."""
        return {}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The builder's own command-line options (named as in ``options``)."""

    def build_with_report(
        self,
        raw_dir: str | Path,
        label_set: str = "native",
        keep_all_labels: bool = False,
        skip_bad: bool = False,
        num_workers: int = 4,
        cache_dir: str | None = None,
        **options,
    ) -> BuildResult:
        """The ``DatasetDict`` with what was left out and why, and the dataset card."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise TypeError(f"{self.spec.name} has no option {unknown}; its options: {sorted(self.options)}")
        options = {**self.options, **options}
        self.check_options(label_set, options)
        raw = check_layout(self.spec.name, raw_dir, self.layout(options), self.hint)
        log = ProblemLog(self.spec.name, raw)
        utterances = inside_corpus(self.read(raw, log, **options), raw, log)
        recorded = options if self.card_options is None else {k: options[k] for k in self.card_options}
        return assemble(
            self.spec,
            utterances,
            log,
            label_set=label_set,
            keep_all_labels=keep_all_labels,
            skip_bad=skip_bad,
            num_workers=num_workers,
            cache_dir=cache_dir,
            options=recorded or None,
            **self.assemble_settings(options),
        )

    def build(self, raw_dir: str | Path, **kwargs):
        """The corpus' ``DatasetDict``; see the builder module's doc."""
        return self.build_with_report(raw_dir, **kwargs).dataset_dict

    def main(self, argv=None, doc: str | None = None) -> BuildResult:
        parser = corpus_argument_parser(self.spec, doc or self.__doc__ or self.spec.name)
        self.add_arguments(parser)
        args = parser.parse_args(argv)
        return run_cli(args, self.build_with_report, **{name: getattr(args, name) for name in self.options})


class SpeakerSplitBuilder(CorpusBuilder):
    """A builder whose splits are whole speakers drawn by serhub (:func:`assign_speaker_splits`)."""

    options = {"validation_fraction": 0.1, "test_fraction": 0.1, "seed": 0}

    def scan(self, raw: Path, log: ProblemLog, **options) -> list[Utterance]:
        raise NotImplementedError

    def read(self, raw, log, **options):
        utterances = self.scan(raw, log, **options)
        assign_speaker_splits(
            utterances, log, options["validation_fraction"], options["test_fraction"], options["seed"]
        )
        return utterances

    def add_arguments(self, parser):
        add_speaker_split_arguments(parser)


def add_speaker_split_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of :func:`assign_speaker_splits`."""
    parser.add_argument("--validation_fraction", type=float, default=0.1, help="share of the speakers")
    parser.add_argument("--test_fraction", type=float, default=0.1, help="share of the speakers")
    parser.add_argument("--seed", type=int, default=0, help="which speakers are held out")


__all__ = ["CorpusBuilder", "SpeakerSplitBuilder", "add_speaker_split_arguments", "assign_speaker_splits"]
