"""Execute one chapter with papermill under a profile and record its run time.

Usage: python scripts/run_chapter.py book/CHAPTER.ipynb results/PROFILE/notebooks/CHAPTER.ipynb --profile PROFILE

The executed notebook is written next to a temporary name first and renamed when it
finished, so an interrupted run never leaves a half-executed notebook behind. The run
time goes to results/<profile>/chapter_times/<chapter>.csv (one file per chapter, so that
chapters can run in parallel).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd
import papermill as pm

from negspike.results import write_table


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
    start = time.perf_counter()
    pm.execute_notebook(str(args.notebook), str(tmp), parameters={"profile": args.profile}, kernel_name="python3",
                        cwd=str(args.notebook.parent), progress_bar=False)
    seconds = time.perf_counter() - start
    os.replace(tmp, args.output)
    if env_profile is not None:
        os.environ["NEGSPIKE_PROFILE"] = env_profile
    times = args.output.parent.parent / "chapter_times" / f"{args.notebook.stem}.csv"
    write_table(pd.DataFrame([{"chapter": args.notebook.stem, "profile": args.profile, "seconds": seconds}]), times)
    print(f"{args.notebook.stem}: {seconds:.0f} s under profile {args.profile}")


if __name__ == "__main__":
    main()
