"""Results files: written atomically (a crash while writing leaves the previous file intact),
and found again, in this machine's ``results/`` or in the committed ``records/``."""
from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import pandas as pd

__all__ = ["RESULTS_DIR", "RECORDS_DIR", "PROVENANCE", "ResultsSource", "results_source", "atomic_write", "write_table"]

_ROOT = Path(__file__).resolve().parents[2]  # the repository (the library is installed editable from lib/)
#: ``results/``: every run of ``make reproduce PROFILE=p`` writes ``results/p/`` (not committed).
RESULTS_DIR = _ROOT / "results"
#: ``records/``: the results of runs too long for every build, committed with their provenance
#: (``scripts/record_results.py``), so that a build which cannot afford the run still shows them.
RECORDS_DIR = _ROOT / "records"
#: The provenance file of a record: command, commit, date, machine, wall time, profile file.
PROVENANCE = "PROVENANCE.json"


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


@dataclass(frozen=True)
class ResultsSource:
    """Where a profile's tables were found: this machine's run or a committed record."""

    folder: Path
    recorded: bool  # True: records/<profile>/, a committed record; False: results/<profile>/
    provenance: dict = field(default_factory=dict)  # the record's PROVENANCE.json ({} for results/)

    def read(self, name: str) -> pd.DataFrame:
        """The table ``<name>.csv`` of this source (an empty file reads as an empty table)."""
        try:
            return pd.read_csv(self.folder / f"{name}.csv")
        except pd.errors.EmptyDataError:
            return pd.DataFrame()

    def note(self) -> str:
        """One sentence for the reader: which run wrote these tables, where and when."""
        profile = self.folder.name
        if not self.recorded:
            newest = max(p.stat().st_mtime for p in self.folder.glob("*.csv"))
            when = dt.datetime.fromtimestamp(newest, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            return f"read from `results/{profile}/`, written by `make reproduce PROFILE={profile}` on this machine ({when})"
        p = self.provenance
        minutes = f", {p['wall_minutes']:.0f} min" if p.get("wall_minutes") else ""
        return (f"read from the committed record `records/{profile}/`: `{p.get('command', '?')}` at commit "
                f"`{str(p.get('commit', '?'))[:10]}`{' (with uncommitted changes)' if p.get('dirty') else ''} "
                f"on {p.get('date', '?')}, {p.get('machine', 'machine not recorded')}{minutes}")


def _complete(folder: Path, files: Iterable[str], columns: Mapping[str, Iterable[str]]) -> bool:
    """Every ``<file>.csv`` is there and holds the required columns (older runs lack some)."""
    for name in files:
        path = folder / f"{name}.csv"
        if not path.is_file():
            return False
        if columns.get(name):
            header = path.read_text().partition("\n")[0].split(",")
            if not set(columns[name]) <= set(header):
                return False
    return True


def results_source(profile: str, files: Iterable[str], columns: Mapping[str, Iterable[str]] | None = None,
                   results_dir: Path | None = None, records_dir: Path | None = None) -> ResultsSource | None:
    """The tables ``files`` of ``profile``: from ``results/<profile>/`` when this machine ran it with
    the present columns, else from the committed ``records/<profile>/``, else None.

    ``columns`` maps a file to the columns it must have; a folder written by an older version of
    the library without them is passed over.
    """
    files, columns = list(files), dict(columns or {})
    here = (results_dir or RESULTS_DIR) / profile
    if _complete(here, files, columns):
        return ResultsSource(here, recorded=False)
    rec = (records_dir or RECORDS_DIR) / profile
    if _complete(rec, files, columns) and (rec / PROVENANCE).is_file():
        return ResultsSource(rec, recorded=True, provenance=json.loads((rec / PROVENANCE).read_text()))
    return None
