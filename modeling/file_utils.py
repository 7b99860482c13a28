"""Writing files and output folders atomically: a crash never leaves a half-written one at the target."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def is_local_reference(name_or_path: str | os.PathLike) -> bool:
    """Whether a model/dataset reference names a local folder rather than a Hub id. Hub ids are
    "name" or "owner/name"; a path object, an absolute or ./ ../ ~ path, or more than one "/" is local."""
    if isinstance(name_or_path, os.PathLike):
        return True
    text = str(name_or_path)
    return text.startswith((".", "/", "~")) or os.path.isabs(text) or text.count("/") > 1


def ffmpeg_input(path: str | os.PathLike) -> list[str]:
    """ffmpeg's / ffprobe's input arguments for the local file ``path`` and nothing else: a name such as
    ``http:x.wav``, ``concat:a.wav|b.wav`` or ``-x.wav`` would otherwise be read as a protocol or an option."""
    return ["-protocol_whitelist", "file", "-i", f"file:{Path(path).resolve()}"]


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` writes a temporary sibling of ``path`` that then replaces it (``os.replace``):
    a reader or a crash never leaves half a file at ``path``. The temporary file goes on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result should look like open()'s
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _umask() -> int:
    """The process umask (read by setting it, then restoring it at once)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def check_output_dir(output_dir: str | os.PathLike, overwrite: bool = False, replaced: bool = False) -> None:
    """Before any slow work: ``output_dir`` is not a file, not a non-empty folder unless ``overwrite``,
    and can be written: the folder itself, or where it will be made; ``replaced``: the folder is swapped
    in as a whole (``atomic_output_dir``), from its parent."""
    output_dir = Path(output_dir).expanduser()
    existing = output_dir.parent if replaced else output_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    for path in (output_dir, existing):
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(
                f"--output_dir {output_dir}: {path} is a file, not a folder; the results are several files "
                "written into a folder. Choose a folder path, or move the file away."
            )
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{output_dir} already exists and is not empty; choose another output folder or pass --overwrite."
        )
    try:
        with tempfile.TemporaryFile(dir=existing):  # the one sure test, for root and read-only mounts too
            pass
    except OSError as error:
        raise PermissionError(
            f"--output_dir {output_dir}: cannot write to {existing} ({error.strerror or error}); choose a "
            "folder you can write to, or change its permissions."
        ) from None


@contextlib.contextmanager
def atomic_output_dir(output_dir: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``output_dir``, on error it is removed.

    An existing non-empty ``output_dir`` raises ``FileExistsError`` unless ``overwrite``; with
    ``overwrite`` the old folder is swapped out only after the new one is complete.
    """
    check_output_dir(output_dir, overwrite, replaced=True)
    output_dir = Path(output_dir).resolve()
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the result should look like mkdir's
    try:
        yield tmp
        old = None
        if output_dir.exists():
            old = output_dir.with_name(f".{output_dir.name}.old-{os.getpid()}")
            os.replace(output_dir, old)
        os.replace(tmp, output_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["atomic_output_dir", "atomic_write", "check_output_dir", "ffmpeg_input", "is_local_reference"]
