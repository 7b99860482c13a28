"""Text-generation metrics for generated descriptions (BLEU-4, METEOR, ROUGE-L), offline, as an
`evaluate` module.

    import evaluate
    text = evaluate.load("metrics/text_metrics")          # a local folder: works offline
    text.compute(predictions=["high pitch, fast"], references=["high pitch, fast, loud"])

- BLEU-4: sacrebleu's corpus BLEU (13a tokenisation), on a 0-1 scale;
- ROUGE-L: rouge-score's LCS F-measure (Porter stemming), the mean over pairs;
- METEOR: NLTK's ``meteor_score`` (exact, stem and WordNet-synonym matches; alpha 0.9, beta 3,
  gamma 0.5), the mean over pairs. WordNet comes from Debian's ``wordnet-base`` and
  ``wordnet-sense-index`` packages (``/usr/share/wordnet``): its files are copied once into an NLTK data
  folder with the ``lexnames`` file Debian lacks (written from the lexnames(5WN) manual page), and
  words are split with the Treebank tokenizer (``word_tokenize`` needs data that is not available
  offline). ``SERHUB_WORDNET_DIR`` points at another WordNet 3.0 dict folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import datasets
import evaluate

# lexnames(5WN): the 45 lexicographer files, "number name syntactic-category"
LEXNAMES = """adj.all 3
adj.pert 3
adv.all 4
noun.Tops 1
noun.act 1
noun.animal 1
noun.artifact 1
noun.attribute 1
noun.body 1
noun.cognition 1
noun.communication 1
noun.event 1
noun.feeling 1
noun.food 1
noun.group 1
noun.location 1
noun.motive 1
noun.object 1
noun.person 1
noun.phenomenon 1
noun.plant 1
noun.possession 1
noun.process 1
noun.quantity 1
noun.relation 1
noun.shape 1
noun.state 1
noun.substance 1
noun.time 1
verb.body 2
verb.change 2
verb.cognition 2
verb.communication 2
verb.competition 2
verb.consumption 2
verb.contact 2
verb.creation 2
verb.emotion 2
verb.motion 2
verb.perception 2
verb.possession 2
verb.social 2
verb.stative 2
verb.weather 2
adj.ppl 3"""

_DESCRIPTION = "BLEU-4, METEOR and ROUGE-L of generated texts against references, offline."
_KWARGS_DESCRIPTION = """\
Args:
    predictions: generated texts.
    references: one reference text per prediction.
Returns:
    bleu (0-1), meteor (0-1, mean over pairs), rouge_l (0-1, mean F-measure over pairs), num_samples.
"""


def nltk_wordnet_root() -> Path:
    """An NLTK data folder whose corpora/wordnet holds Debian's WordNet 3.0 and a lexnames file."""
    source = Path(os.environ.get("SERHUB_WORDNET_DIR", "/usr/share/wordnet"))
    if not (source / "data.noun").is_file():
        raise FileNotFoundError(
            f"WordNet was not found in {source}: install Debian's wordnet-base and wordnet-sense-index "
            "(./setup.sh does), or set SERHUB_WORDNET_DIR to a WordNet 3.0 dict folder"
        )
    cache = Path(
        os.environ.get("SERHUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache")).expanduser() / "serhub"
    )
    root = cache.expanduser() / "nltk_data"
    target = root / "corpora" / "wordnet"
    if not (target / "lexnames").is_file():
        import shutil

        tmp = target.with_name(f"wordnet.tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        for file in source.iterdir():
            if file.is_file() and not (tmp / file.name).exists():
                shutil.copyfile(file, tmp / file.name)  # copies: NLTK refuses links that leave its root
        (tmp / "lexnames").write_text(
            "".join(
                f"{i:02d}\t{line.split()[0]}\t{line.split()[1]}\n"
                for i, line in enumerate(LEXNAMES.splitlines())
            )
        )
        try:
            tmp.rename(target)
        except OSError:  # another process made it first
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def text_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict:
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions but {len(references)} references; give one reference per prediction"
        )
    if not predictions:
        raise ValueError("no predictions to score")
    import nltk
    import sacrebleu
    from nltk.tokenize import TreebankWordTokenizer
    from nltk.translate.meteor_score import meteor_score
    from rouge_score import rouge_scorer

    root = str(nltk_wordnet_root())
    if root not in nltk.data.path:
        nltk.data.path.insert(0, root)
    from nltk.corpus import wordnet

    tokenize = TreebankWordTokenizer().tokenize
    bleu = sacrebleu.corpus_bleu(list(predictions), [list(references)]).score / 100.0
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)]
    meteor = [
        meteor_score([tokenize(r.lower())], tokenize(p.lower()), wordnet=wordnet)
        for p, r in zip(predictions, references)
    ]
    return {
        "bleu": float(bleu),
        "meteor": float(sum(meteor) / len(meteor)),
        "rouge_l": float(sum(rouge) / len(rouge)),
        "num_samples": len(predictions),
    }


class TextMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        return text_metrics(predictions, references)
