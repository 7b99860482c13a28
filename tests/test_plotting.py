"""training_curves.png shows what its titles say: one panel per kind of quantity, no counters as
scores, phases end to end with their boundaries marked, evaluations at their own steps."""

import pytest
from serhub.metrics.plotting import metric_kind, plot_training_curves, training_curves, training_curves_figure


def trainer_history(stage=None, steps=(5, 10), f1=(0.3, 0.5)):
    """A Trainer log_history as the recipes write it: train losses, evaluations with counters, the summary."""
    history = []
    for step, score in zip(steps, f1):
        history.append(
            {
                "step": step,
                "epoch": step / 10,
                "loss": 2.0 - step / 10,
                "learning_rate": 1e-3,
                "grad_norm": 3.0,
            }
        )
        history.append(
            {
                "step": step,
                "epoch": step / 10,
                "eval_loss": 1.9 - step / 10,
                "eval_macro_f1": score,
                "eval_accuracy": score + 0.1,
                "eval_unweighted_accuracy": score,
                "eval_f1_happy": 0.9,
                "eval_macro_f1_ci_low": score - 0.1,
                "eval_num_samples": 240,
                "eval_runtime": 12.5,
                "eval_samples_per_second": 19.2,
            }
        )
    history.append(
        {"step": steps[-1], "train_runtime": 60.0, "train_loss": 1.7, "train_samples_per_second": 40.0}
    )
    if stage:
        for h in history:
            h["stage"] = stage
    return history


def emosllm_history():
    """Three phases, each counting its steps from 1, as EmoSLLM's run.history holds them."""
    history = []
    for phase, wer in (("phase1", 4.1), ("phase2", 3.6)):
        history += [
            {"step": 5, "loss": 3.0, "stage": phase},
            {"step": 10, "loss": 2.5, "stage": phase},
            {
                "step": 10,
                "eval_loss": 2.6,
                "eval_wer": wer,
                "eval_token_norm_ratio": 1.1,
                "eval_token_diversity": 0.2,
                "eval_runtime": 3.0,
                "stage": phase,
            },
        ]
    history += [
        {"step": 50, "loss": 1.0, "stage": "phase3"},
        {"step": 100, "loss": 0.8, "stage": "phase3"},
        {
            "step": 100,
            "eval_wer": 3.9,
            "eval_label_logits_macro_f1": 0.5,
            "eval_label_logits_num_samples": 240,
            "stage": "phase3",
        },
    ]
    return history


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("loss", "loss"),
        ("eval_loss", "loss"),
        ("eval_macro_f1", "score"),
        ("eval_label_logits_unweighted_accuracy", "score"),
        ("eval_accuracy", "score"),
        ("eval_ccc_arousal", "score"),
        ("eval_wer", "WER"),
        ("eval_token_norm_ratio", "audio tokens"),
        ("eval_num_samples", None),
        ("eval_label_logits_num_samples", None),
        ("eval_runtime", None),
        ("eval_samples_per_second", None),
        ("total_flos", None),
        ("learning_rate", None),
        ("grad_norm", None),
        ("eval_f1_happy", None),
        ("eval_macro_f1_ci_low", None),
    ],
)
def test_every_key_has_its_kind(key, kind):
    assert metric_kind(key) == kind


def test_counters_are_never_plotted_and_evaluations_sit_at_their_steps():
    curves = training_curves(trainer_history())
    assert list(curves.panels) == ["loss", "score"]
    assert curves.x_label == "step" and curves.phases == []
    assert set(curves.panels["score"]) == {"macro-F1", "WA", "UA"}
    assert curves.panels["score"]["macro-F1"] == [(5.0, 0.3), (10.0, 0.5)]
    assert curves.panels["loss"]["train loss"] == [(5.0, 1.5), (10.0, 1.0)]  # not the summary's mean
    assert all(0 <= y <= 1 for line in curves.panels["score"].values() for _, y in line)


def test_phases_are_laid_end_to_end_with_marked_boundaries(tmp_path):
    curves = training_curves(emosllm_history())
    assert list(curves.panels) == ["loss", "score", "WER", "audio tokens"]
    assert curves.phases == [(0.0, "phase1"), (10.0, "phase2"), (20.0, "phase3")]
    assert curves.panels["WER"]["wer"] == [(10.0, 4.1), (20.0, 3.6), (120.0, 3.9)]
    assert curves.panels["loss"]["train loss"][-1] == (120.0, 0.8)
    fig = training_curves_figure(emosllm_history(), title="EmoSLLM curriculum")
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == [
        "loss",
        "macro-F1 / UA / WA",
        "word error rate (held-out ASR)",
        "audio tokens: diversity, norm / LLM embeddings",
    ]
    for ax in axes:
        assert ax.get_xlabel() == "step"
        boundaries = sorted(line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--")
        assert boundaries == [10.0, 20.0]
        assert [t.get_text().strip() for t in ax.texts] == ["phase1", "phase2", "phase3"]
        assert ax.get_xlim()[0] == 0.0 and ax.get_xlim()[1] >= 120.0
    labels = [line.get_label() for ax in axes for line in ax.get_lines()]
    assert not any("num samples" in label or "runtime" in label for label in labels)
    assert plot_training_curves(emosllm_history(), tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_an_epoch_history_without_steps_is_plotted_by_epoch():
    """graph fusion logs one entry per epoch (loss and validation macro-F1), with no step."""
    history = [{"epoch": e, "loss": 1.0 / e, "eval_macro_f1": 0.1 * e} for e in (1, 2, 3)]
    curves = training_curves(history)
    assert curves.x_label == "epoch"
    assert curves.panels["loss"]["train loss"] == [(1.0, 1.0), (2.0, 0.5), (3.0, 1 / 3)]
    assert [x for x, _ in curves.panels["score"]["macro-F1"]] == [1.0, 2.0, 3.0]


def test_no_empty_panel():
    fig = training_curves_figure([{"step": 1, "eval_wer": 0.5, "eval_runtime": 1.0}])
    assert [ax.get_title() for ax in fig.get_axes()] == ["word error rate (held-out ASR)"]
    fig = training_curves_figure([{"step": 1, "eval_runtime": 1.0}])
    assert len(fig.get_axes()) == 1 and fig.get_axes()[0].get_title() == "nothing to plot"
