"""A checkpoint cache keyed by a step's configuration and the version of its code.

A checkpoint's file name carries a hash of the step's configuration and a hash of the
library code its result depends on (:data:`STEP_CODE`); the file stores both, and they
are compared on load, so a checkpoint made under another configuration or by other code
is never used. Files are written atomically and read with ``torch.load(weights_only=True)``:
only tensors, numbers, strings and containers of them, so that a cache file copied from
elsewhere cannot run code when it is loaded.

Callers do not write keys: each cached step has one key function next to it
(:func:`negspike.pipeline.ann_key`, ``vp_key``, ``clip_key``, ``calibration_key``,
:func:`negspike.experiments.sim_key`, :func:`negspike.own_network.own_network_key`).
"""
from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .data import DATA_DIR
from .results import atomic_write

__all__ = ["CACHE_DIR", "STEP_CODE", "config_key", "code_version", "cache_path", "atomic_save", "cached"]

CACHE_DIR = Path(os.environ.get("NEGSPIKE_CACHE", DATA_DIR / "cache"))

# The library code each cached step's result depends on. An entry is a module of
# negspike ("neurons": the whole file) or one top-level function of one ("pipeline:trained_ann":
# that function and the functions and classes of its module it names, recursively), so that
# editing one step of pipeline.py, or a study in experiments.py, leaves the others' files valid.
# A step lists the code of its inputs too: the key of "vp" names its ANN by configuration only,
# so a change to training must reach it. The version is a hash of the code's syntax tree
# without docstrings: comments, docstrings and layout do not count, any change to code does.
_ANN = ("data", "models", "train", "utils", "distributed", "pipeline:trained_ann")
_VP = _ANN + ("activations", "threshold", "variance_penalty", "clipping", "tails", "graph",
              "pipeline:variance_finetuned_ann")
_CLIP = _VP + ("pipeline:clipped_ann",)
_CALIBRATION = _CLIP + ("neurons", "kernels", "tracking", "convert", "calibrate", "calibration_pass",
                         "calibration_objective", "calibration_guard", "pipeline:calibrated_snn")
STEP_CODE: dict[str, tuple[str, ...]] = {
    "ann": _ANN,
    "vp": _VP,
    "clip": _CLIP,
    "calibration": _CALIBRATION,
    # any SNN the library makes, converted from any ANN step, calibrated or not (an SNN a
    # chapter builds with code of its own is told apart by its label only)
    "sim": _CALIBRATION + ("simulate", "experiments:simulation"),
    "own_network": ("data", "train", "utils", "distributed", "pipeline:load_split",
                    "own_network:train_functional_net"),
}


def config_key(config: dict) -> str:
    """Hash of a JSON-serialisable configuration, independent of key order."""
    blob = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _module_source(module: str) -> str:
    """The source text of ``negspike.<module>`` (tests replace this reader)."""
    return (Path(__file__).parent / f"{module}.py").read_text()


@functools.lru_cache(maxsize=None)
def _module_tree(module: str) -> ast.Module:
    """The syntax tree of ``negspike.<module>`` without docstrings (comments are never in it)."""
    tree = ast.parse(_module_source(module))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
                node.body = node.body[1:] or [ast.Pass()]
    return tree


def _named_closure(tree: ast.Module, name: str) -> list[ast.AST]:
    """The top-level definition ``name`` of ``tree`` and those it names, recursively, in file order."""
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    if name not in defs:
        raise KeyError(f"cache: STEP_CODE names {name!r}, which its module does not define")
    todo, seen = [name], set()
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo += [n.id for n in ast.walk(defs[current]) if isinstance(n, ast.Name) and n.id in defs]
    return [node for key, node in defs.items() if key in seen]


@functools.lru_cache(maxsize=None)
def _entry_digest(entry: str) -> str:
    """Hash of one :data:`STEP_CODE` entry's code; line numbers do not count (``ast.dump`` leaves them out)."""
    module, _, name = entry.partition(":")
    tree = _module_tree(module)
    nodes = _named_closure(tree, name) if name else [tree]
    return hashlib.sha256("\n".join(ast.dump(n) for n in nodes).encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def code_version(step: str) -> str:
    """Hash of the code ``step``'s result depends on (:data:`STEP_CODE`), computed once per process."""
    if step not in STEP_CODE:
        raise KeyError(f"cache: unknown step {step!r}; add it to negspike.cache.STEP_CODE with the code it runs")
    parts = [f"{entry}={_entry_digest(entry)}" for entry in sorted(set(STEP_CODE[step]))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _forget_code_versions() -> None:
    """Read the sources again on next use (for tests that change them)."""
    for fn in (_module_tree, _entry_digest, code_version):
        fn.cache_clear()


def cache_path(step: str, config: dict, cache_dir: Path | None = None) -> Path:
    """Where ``step``'s checkpoint for ``config`` under the current code lives (or would)."""
    folder = Path(cache_dir) if cache_dir is not None else CACHE_DIR
    return folder / f"{step}-{config_key(config)}-{code_version(step)}.pt"


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _plain(value: Any, where: str) -> Any:
    """``value`` as ``torch.load(weights_only=True)`` reads it back: tensors, numbers, strings,
    None, and dicts, lists and tuples of them. NumPy scalars become Python numbers; anything
    else is refused here, when it is stored, rather than when a later run loads it."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):  # OrderedDict (a state dict) too: loading needs only the mapping
        return {_plain(k, f"a key of {where}"): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"cache: cannot store {where}, a {type(value).__module__}.{type(value).__qualname__}: "
                    "a cached value holds only tensors, numbers, strings and dicts, lists or tuples of them")


def _load_problem(path: Path, err: Exception) -> str:
    """One warning line saying why the checkpoint at ``path`` is not used (torch's run to many)."""
    text = str(err)
    blocked = re.search(r"GLOBAL ([\w.]+)", text)
    if blocked:  # a pickle that would construct or call something: never run it
        return (f"cache: refused checkpoint {path}: it would load {blocked.group(1)}, and the cache reads only "
                "tensors and plain containers; rebuilding it")
    unsupported = re.search(r"Unsupported [^\n]+", text)
    detail = unsupported.group(0) if unsupported else (text.strip().splitlines() or [""])[0]
    return f"cache: rebuilding unreadable checkpoint {path} ({type(err).__name__}: {detail[:200]})"


def cached(step: str, config: dict, build: Callable[[], Any], cache_dir: Path | None = None) -> Any:
    """Return ``build()``'s result for ``config``, from disk when a valid checkpoint exists.

    The checkpoint must hold ``config`` and the current :func:`code_version` of ``step``;
    an unreadable, refused or foreign file is reported in one warning line and rebuilt.
    The value is returned as it is stored (see :func:`_plain`), built or loaded alike.
    """
    path = cache_path(step, config, cache_dir)
    canonical = json.loads(json.dumps(config, sort_keys=True, default=str))
    code = code_version(step)
    value = _load(path, canonical, code)
    if value is not _MISSING:
        return value
    # Chapters run two at a time (make -j2, nbval -n 2) and often need the same step: the
    # first process builds it while the others wait on the lock, then load its file.
    with _build_lock(path):
        value = _load(path, canonical, code, warn=False)  # what another process may have built meanwhile
        if value is _MISSING:
            value = _plain(build(), f"the value of step {step!r}")
            atomic_save({"config": canonical, "code": code, "value": value}, path)
    return value


_MISSING = object()


def _load(path: Path, canonical: dict, code: str, warn: bool = True) -> Any:
    """The stored value when ``path`` holds ``canonical`` and ``code``, else ``_MISSING`` (with a
    warning when a file exists but cannot be used)."""
    if not path.exists():
        return _MISSING
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("config") != canonical or blob.get("code") != code:
            raise ValueError("stored configuration or code version differs")
        return blob["value"]
    except Exception as err:
        if warn:
            warnings.warn(_load_problem(path, err), stacklevel=3)
        return _MISSING


@contextlib.contextmanager
def _build_lock(path: Path):
    """An exclusive lock on ``<path>.lock`` while a step is built (no-op without fcntl).

    The lock file is removed afterwards, so a cache folder holds only checkpoints; a process
    that races that removal may build the step a second time, which the atomic write makes
    harmless.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no cross-process lock, at worst a step is built twice
        yield
        return
    lock = path.with_name(path.name + ".lock")
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
            fcntl.flock(fh, fcntl.LOCK_UN)
