"""A checkpoint cache keyed by the full configuration of a step, written atomically."""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from .data import DATA_DIR
from .results import atomic_write

__all__ = ["CACHE_DIR", "config_key", "atomic_save", "cached"]

CACHE_DIR = Path(os.environ.get("NEGSPIKE_CACHE", DATA_DIR / "cache"))


def config_key(config: dict) -> str:
    """Hash of a JSON-serialisable configuration, independent of key order."""
    blob = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def cached(step: str, config: dict, build: Callable[[], Any], cache_dir: Path | None = None) -> Any:
    """Return ``build()``'s result for ``config``, from disk when a valid checkpoint exists.

    The file name carries a hash of ``config`` and the file stores ``config`` itself, which
    is compared on load, so a checkpoint made under another configuration is never used.
    An unreadable file is reported in one warning line and rebuilt.
    """
    folder = Path(cache_dir) if cache_dir is not None else CACHE_DIR
    path = folder / f"{step}-{config_key(config)}.pt"
    canonical = json.loads(json.dumps(config, sort_keys=True, default=str))
    if path.exists():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=False)
            if not isinstance(blob, dict) or blob.get("config") != canonical:
                raise ValueError("stored configuration differs")
            return blob["value"]
        except Exception as err:
            warnings.warn(f"cache: rebuilding unreadable checkpoint {path} ({type(err).__name__}: {err})", stacklevel=2)
    value = build()
    atomic_save({"config": canonical, "value": value}, path)
    return value
