"""serhub metrics: the ``ser_metrics`` evaluate module and plotting helpers."""

from pathlib import Path

SER_METRICS_DIR = Path(__file__).resolve().parent / "ser_metrics"


def load_ser_metrics(config_name: str | None = None, **kwargs):
    """``evaluate.load`` of the local ser_metrics module, from any working directory, offline."""
    import evaluate

    return evaluate.load(str(SER_METRICS_DIR), config_name, **kwargs)


__all__ = ["SER_METRICS_DIR", "load_ser_metrics"]
