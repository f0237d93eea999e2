"""Output paths, checked before the work that fills them: a directory that cannot be created or written, a
file whose directory is missing or read-only, are refused in one line before any training, export,
build or check time is spent (and nothing is written). And the digest that pins a file read or written
(``sha256_file``: a checkpoint's data, an export's float model and data). Standard library only: the
numeric core imports it without PyTorch."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path

from tinylstm.errors import TinyLSTMError


def _probe(directory: Path, flag: str, target: Path) -> None:
    """Create and remove a temporary directory in ``directory``: the one test that holds for every file system
    (``os.access`` says yes to root on /proc and on read-only mounts)."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".tinylstm-probe-", dir=directory))
    except OSError as exc:
        # /proc answers ENOENT for an existing directory: "No such file or directory" misled
        why = "it takes no new files" if exc.errno == errno.ENOENT else exc.strerror
        raise TinyLSTMError(
            f"{flag} {target}: cannot write in {directory} ({why}); pick a writable place"
        ) from None


def check_output_dir(out_dir: str | Path, flag: str = "--out") -> Path:
    """``out_dir`` if it is, or can become, a writable directory (missing parents are created later)."""
    out = Path(out_dir)
    for p in (out, *out.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                raise TinyLSTMError(
                    f"{flag} {out}: {p} is a file, not a directory; pick another output directory"
                )
            _probe(p, flag, out)
            break
    return out


def check_output_file(path: str | Path, flag: str) -> Path:
    """``path`` if a file can be written there: not a directory, in an existing, writable directory."""
    out = Path(path)
    if out.is_dir():
        raise TinyLSTMError(f"{flag} {out} is a directory; give a file name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise TinyLSTMError(f"{flag} {out}: the directory {parent} does not exist; create it or pick another")
    if out.exists() and not os.access(out, os.W_OK):
        raise TinyLSTMError(f"{flag} {out}: the file is read-only; pick another")
    _probe(parent, flag, out)
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
