"""serhub: speech emotion recognition with speech encoders and audio-LLMs, the Hugging Face way.

The installed packages live under this namespace, so they never clash with another project's
``metrics`` or ``recipes``: ``serhub.modeling`` (models, processors, remote code),
``serhub.datasets_scripts`` (corpus builders), ``serhub.metrics`` (the ``ser_metrics`` evaluate module,
plots) and ``serhub.recipes`` (training recipes). In the repository they are the top-level folders
``modeling/``, ``datasets_scripts/``, ``metrics/`` and ``recipes/``.
"""

__version__ = "0.1.0"

# A source checkout used without installing it: the top-level folders are the subpackages.
# (Installed, ``pip install -e .`` and wheels map them here already.)
import os as _os

_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "pyproject.toml")) and _os.path.isfile(
    _os.path.join(_root, "modeling", "__init__.py")
):
    __path__.append(_root)
