"""The descriptor metrics (BLEU-4, METEOR, ROUGE-L) against values worked out by hand, offline."""

import evaluate
import pytest
from serhub.metrics.text_metrics.text_metrics import nltk_wordnet_root, text_metrics

METRICS_DIR = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "metrics" / "text_metrics")


def test_values_worked_out_by_hand():
    # hypothesis drops one "the": n-gram precisions 5/5, 3/4, 2/3, 1/2; brevity penalty exp(1 - 6/5)
    hyp, ref = "the cat sat on mat", "the cat sat on the mat"
    scores = text_metrics([hyp], [ref])
    bleu = (1 * 0.75 * (2 / 3) * 0.5) ** 0.25 * 2.718281828459045 ** (1 - 6 / 5)
    assert scores["bleu"] == pytest.approx(bleu, abs=1e-6)
    # longest common subsequence 5 of 5 and 6 tokens: P = 1, R = 5/6
    assert scores["rouge_l"] == pytest.approx(2 * (5 / 6) / (1 + 5 / 6), abs=1e-6)
    # identical: METEOR's fragmentation penalty alone, 0.5 * (1 chunk / 6 matches) ** 3
    same = text_metrics([ref], [ref])
    assert same["meteor"] == pytest.approx(1 - 0.5 * (1 / 6) ** 3, abs=1e-6)
    assert same["bleu"] == pytest.approx(1.0) and same["rouge_l"] == pytest.approx(1.0)


def test_meteor_uses_wordnet_synonyms():
    synonym = text_metrics(["fast speech"], ["quick speech"])["meteor"]
    unrelated = text_metrics(["slow speech"], ["quick speech"])["meteor"]
    assert synonym > 0.9 > 0.3 > unrelated  # "fast" and "quick" share a WordNet synset
    assert (nltk_wordnet_root() / "corpora" / "wordnet" / "lexnames").read_text().count("\n") == 45


def test_evaluate_module_and_bad_input():
    module = evaluate.load(METRICS_DIR)
    out = module.compute(
        predictions=["high pitch, fast", "low and soft"], references=["high pitch, fast", "soft, low"]
    )
    assert out["num_samples"] == 2 and 0 < out["rouge_l"] <= 1 and 0 < out["meteor"] <= 1
    with pytest.raises(ValueError, match="one reference per prediction"):
        text_metrics(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="no predictions"):
        text_metrics([], [])
