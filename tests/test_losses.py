"""The imbalance-aware losses have their defining properties."""

import pytest
import torch
import torch.nn.functional as F
from serhub.modeling.losses import (
    CCCLoss,
    FocalLoss,
    VectorScalingLoss,
    WeightedCrossEntropyLoss,
    build_classification_loss,
    class_weights_from_counts,
    concordance_correlation_coefficient,
)

COUNTS = [400, 200, 100, 40]


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 4, generator=g), torch.randint(0, 4, (32,), generator=g)


@pytest.mark.parametrize("method", ["inverse", "inverse_sqrt", "effective_number"])
def test_class_weights_favour_rare_classes_and_keep_scale(method):
    w = class_weights_from_counts(COUNTS, method)
    assert torch.all(w[1:] > w[:-1])  # rarer class -> larger weight
    assert float((w * torch.tensor(COUNTS, dtype=torch.float)).sum()) == pytest.approx(sum(COUNTS), rel=1e-5)


def test_class_weights_reject_bad_counts():
    with pytest.raises(ValueError, match="classes \\[1\\] have no examples"):
        class_weights_from_counts([10, 0, 3])
    with pytest.raises(ValueError, match="unknown class-weight method"):
        class_weights_from_counts([10, 3], "bogus")


def test_all_losses_reduce_to_ce_at_neutral_parameters(batch):
    logits, y = batch
    ce = F.cross_entropy(logits, y)
    assert WeightedCrossEntropyLoss()(logits, y) == pytest.approx(ce.item(), rel=1e-6)
    assert FocalLoss(gamma=0.0)(logits, y) == pytest.approx(ce.item(), rel=1e-6)
    assert VectorScalingLoss(COUNTS, gamma=0.0, tau=0.0)(logits, y) == pytest.approx(ce.item(), rel=1e-6)


def test_weighted_ce_matches_weighted_mean(batch):
    logits, y = batch
    w = class_weights_from_counts(COUNTS)
    per = F.cross_entropy(logits, y, reduction="none")
    assert WeightedCrossEntropyLoss(w)(logits, y) == pytest.approx(
        float((w[y] * per).sum() / w[y].sum()), rel=1e-6
    )


def test_focal_down_weights_easy_examples():
    # one easy (p_y ~ 0.98) and one hard example (p_y ~ 0.1): focal shrinks the easy one far more
    logits = torch.tensor([[6.0, 1.0, 1.0, 1.0], [0.0, 2.0, 1.0, 1.0]])
    y = torch.tensor([0, 0])
    ce = F.cross_entropy(logits, y, reduction="none")
    focal = torch.stack([FocalLoss(gamma=2.0)(logits[i : i + 1], y[i : i + 1]) for i in range(2)])
    ratio = focal / ce
    assert ratio[0] < 0.01 and ratio[1] > 0.5


def test_rare_class_gets_larger_gradient_with_vector_scaling():
    # the same logit vector, once labelled frequent (0) and once rare (3): VS pushes the rare label harder
    logits = torch.zeros(1, 4, requires_grad=True)
    vs = VectorScalingLoss(COUNTS, gamma=0.3, tau=1.0)
    grad = {}
    for label in (0, 3):
        logits.grad = None
        vs(logits, torch.tensor([label])).backward()
        grad[label] = -logits.grad[0, label].item()
    assert grad[3] > grad[0] > 0
    # the additive term is the class log-prior: at zero logits VS predicts the prior
    with torch.no_grad():
        adjusted = torch.zeros(4) * vs.delta + vs.iota
    assert torch.allclose(
        adjusted.softmax(-1), torch.tensor(COUNTS, dtype=torch.float) / sum(COUNTS), atol=1e-6
    )


@pytest.mark.parametrize("loss_type", ["ce", "weighted_ce", "focal", "vector_scaling"])
def test_every_loss_trains_a_linear_classifier(loss_type):
    torch.manual_seed(0)
    x = torch.randn(200, 8)
    y = x[:, :4].argmax(-1)
    model = torch.nn.Linear(8, 4)
    loss_fn = build_classification_loss(loss_type, COUNTS)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    first = None
    for _ in range(50):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first


def test_build_loss_needs_counts():
    with pytest.raises(ValueError, match="needs the training-set class counts"):
        build_classification_loss("weighted_ce")
    with pytest.raises(ValueError, match="unknown loss_type"):
        build_classification_loss("hinge", COUNTS)


def test_plain_ce_accepts_a_class_absent_from_training():
    loss = build_classification_loss("ce", [10, 0, 5])  # a ClassLabel class with no training example
    logits, targets = torch.randn(4, 3), torch.tensor([0, 2, 0, 2])
    torch.testing.assert_close(loss(logits, targets), torch.nn.functional.cross_entropy(logits, targets))
    with pytest.raises(ValueError, match="have no examples"):
        build_classification_loss("weighted_ce", [10, 0, 5])  # weights need every class


def test_ccc_and_ccc_loss():
    torch.manual_seed(0)
    y = torch.randn(64, 3)
    assert torch.allclose(concordance_correlation_coefficient(y, y), torch.ones(3), atol=1e-5)
    # a shifted copy is perfectly correlated but not concordant
    assert concordance_correlation_coefficient(y[:, 0] + 1.0, y[:, 0]) < 0.9
    loss = CCCLoss()
    assert loss(y, y).item() == pytest.approx(0.0, abs=1e-5)
    y_nan = y.clone()
    y_nan[:10, 1] = float("nan")  # missing annotations are ignored
    assert torch.isfinite(loss(y + 0.1 * torch.randn_like(y), y_nan))
