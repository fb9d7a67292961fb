"""Results files written atomically: a crash while writing leaves the previous file intact."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd

__all__ = ["atomic_write", "write_table"]


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, flush it to disk, then
    rename it over ``path``. If ``write`` raises (or the process dies), ``path`` keeps its
    previous content and the temporary file is removed (or left as ``.<name>.*.tmp``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as CSV (no index) to ``path`` atomically; returns the path."""
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
