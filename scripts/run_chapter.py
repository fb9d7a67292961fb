"""Execute one chapter with papermill under a profile and record its run time.

Usage: python scripts/run_chapter.py book/CHAPTER.ipynb results/PROFILE/notebooks/CHAPTER.ipynb --profile PROFILE

The executed notebook is written next to a temporary name first and renamed when it
finished, so an interrupted run never leaves a half-executed notebook behind. The run
time goes to results/<profile>/chapter_times/<chapter>.csv (one file per chapter, so that
chapters can run in parallel). What the book's Status page needs to say how and where the
chapter ran goes to results/<profile>/run_facts/<chapter>.json: start and end (UTC), run
time, Python and package versions, platform, CPU model and core count, GPU if any.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path

import pandas as pd
import papermill as pm

from negspike.results import atomic_write, write_table

# Versions the Status page reports; the kernel papermill starts is this same Python (.venv).
PACKAGES = ("torch", "numpy", "negspike", "pandas", "papermill", "nbformat")


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_facts() -> dict:
    """Python, package versions and hardware of this run, for the book's Status page."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    gpu = None
    try:
        import torch
        if torch.cuda.is_available():
            gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except Exception:  # a broken CUDA setup must not lose the chapter's results
        gpu = None
    return {"python": platform.python_version(), "packages": versions, "platform": platform.platform(),
            "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "gpu": gpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("notebook", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--profile", required=True)
    args = ap.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(args.output.stem + ".partial.ipynb")
    env_profile = os.environ.pop("NEGSPIKE_PROFILE", None)  # the parameter decides here
    os.environ["TQDM_DISABLE"] = "1"  # progress bars would clutter the rendered pages
    started = dt.datetime.now(dt.timezone.utc)
    start = time.perf_counter()
    pm.execute_notebook(str(args.notebook), str(tmp), parameters={"profile": args.profile}, kernel_name="python3",
                        cwd=str(args.notebook.parent), progress_bar=False)
    seconds = time.perf_counter() - start
    os.replace(tmp, args.output)
    if env_profile is not None:
        os.environ["NEGSPIKE_PROFILE"] = env_profile
    times = args.output.parent.parent / "chapter_times" / f"{args.notebook.stem}.csv"
    write_table(pd.DataFrame([{"chapter": args.notebook.stem, "profile": args.profile, "seconds": seconds}]), times)
    facts = {"chapter": args.notebook.stem, "profile": args.profile, "seconds": round(seconds, 1),
             "started_utc": started.isoformat(timespec="seconds"),
             "finished_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **run_facts()}
    facts_path = args.output.parent.parent / "run_facts" / f"{args.notebook.stem}.json"
    atomic_write(facts_path, lambda tmp: tmp.write_text(json.dumps(facts, indent=1) + "\n"))
    print(f"{args.notebook.stem}: {seconds:.0f} s under profile {args.profile}")


if __name__ == "__main__":
    main()
