"""Commit a long run's tables as a record that every build can show: results/<profile>/ to
records/<profile>/, with PROVENANCE.json (command, commit, date, machine, wall time, the
profile file as it was).

Usage: python scripts/record_results.py PROFILE|FILE.yaml [--pattern 'cifar10_*.csv'] [--wall-minutes M]
                                                [--machine TEXT] [--note TEXT] [--checkout DIR]

Run it right after `make reproduce PROFILE=...`, in the same checkout or with --checkout
naming the clone that ran it, so that the commit it records is the code that produced the
tables. The chapters read results/<profile>/ first
(this machine's own run) and fall back to the record (negspike.results.results_source).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from negspike.profiles import PROFILE_DIR, ProfileError, load_profile
from negspike.results import PROVENANCE, RECORDS_DIR, RESULTS_DIR, atomic_write


REPO = Path(__file__).resolve().parents[1]


def git(checkout: Path, *args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=checkout).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile", help="a profile name (profiles/<name>.yaml)")
    ap.add_argument("--pattern", default="*.csv", help="which tables of results/<profile>/ to record")
    ap.add_argument("--wall-minutes", type=float, help="measured wall time of the run, in minutes")
    ap.add_argument("--machine", help="the machine, in words (default: platform and CPU count)")
    ap.add_argument("--note", default="", help="anything a reader needs to know about the run")
    ap.add_argument("--checkout", type=Path, default=REPO,
                    help="the clone that ran the profile (default: this one); its results, commit and profile file are recorded")
    args = ap.parse_args()
    try:
        prof = load_profile(args.profile)
    except ProfileError as err:
        sys.exit(f"error: {err}")
    checkout = args.checkout.resolve()
    profile_path = (Path(args.profile) if args.profile.endswith((".yaml", ".yml"))
                    else checkout / PROFILE_DIR.relative_to(REPO) / f"{prof.name}.yaml")
    src, dst = checkout / RESULTS_DIR.relative_to(REPO) / prof.name, RECORDS_DIR / prof.name
    tables = sorted(src.glob(args.pattern))
    if not tables:
        sys.exit(f"error: no {args.pattern} in {src}; run `make reproduce PROFILE={prof.name}` first")
    dirty = bool(git(checkout, "status", "--porcelain", "--untracked-files=no"))
    provenance = {
        "profile": prof.name,
        "command": f"make reproduce PROFILE={prof.name}",
        "commit": git(checkout, "rev-parse", "HEAD"),
        "dirty": dirty,
        "date": dt.datetime.fromtimestamp(max(p.stat().st_mtime for p in tables), dt.timezone.utc)
                  .strftime("%Y-%m-%d %H:%M UTC"),
        "machine": args.machine or (f"{platform.machine()}, {torch.cuda.get_device_name()}" if torch.cuda.is_available()
                                    else f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU"),
        "wall_minutes": args.wall_minutes,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "profile_file": profile_path.read_text(),
        "tables": [p.name for p in tables],
        "note": args.note,
    }
    dst.mkdir(parents=True, exist_ok=True)
    for old in dst.glob("*.csv"):
        old.unlink()
    for p in tables:
        shutil.copyfile(p, dst / p.name)
    atomic_write(dst / PROVENANCE, lambda tmp: tmp.write_text(json.dumps(provenance, indent=2) + "\n"))
    print(f"recorded {len(tables)} tables in {dst} (commit {provenance['commit'][:10]}{', dirty' if dirty else ''})")


if __name__ == "__main__":
    main()
