"""serhub: speech emotion recognition with speech encoders and audio-LLMs, the Hugging Face way.

The installed packages live under this namespace, so they never clash with another project's
``metrics`` or ``recipes``: ``serhub.modeling`` (models, processors, remote code),
``serhub.datasets_scripts`` (corpus builders), ``serhub.metrics`` (the ``ser_metrics`` evaluate module,
plots) and ``serhub.recipes`` (training recipes). In the repository they are the top-level folders
``modeling/``, ``datasets_scripts/``, ``metrics/`` and ``recipes/``, mapped into this namespace by
pyproject.toml's ``package-dir`` (``pip install -e .``, as ./setup.sh runs it, or a wheel): import
serhub from an environment where it is installed, not from a bare checkout.
"""

__version__ = "0.1.0"
