"""Render the book with the outputs of a reproduction run.

Copies the book sources to _build/src, replaces each chapter notebook by its executed
copy from results/<profile>/notebooks/ (with a banner naming the profile), and runs
jupyter-book with warnings as errors. Chapters that were not executed are rendered
without outputs and say so.

Usage: python scripts/build_book.py --profile quick [--out DIR]   (HTML in DIR/_build/html; default DIR: .)
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def banner(profile: str, executed: Path | None) -> nbformat.NotebookNode:
    if executed is None:
        text = (f"```{{note}}\nThis chapter has not been executed under the `{profile}` profile yet: "
                f"run `make reproduce PROFILE={profile}` to see its outputs.\n```")
    else:
        when = dt.datetime.fromtimestamp(executed.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        text = (f"```{{note}}\nOutputs on this page come from `make reproduce PROFILE={profile}` "
                f"(profile **{profile}**, executed {when}).\n```")
    return nbformat.v4.new_markdown_cell(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--out", type=Path, default=ROOT)
    args = ap.parse_args()
    out = args.out.resolve()
    src = out / "_build" / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "book", src / "book")
    runs = ROOT / "results" / args.profile / "notebooks"
    for nb_path in sorted((src / "book").glob("*.ipynb")):
        executed = runs / nb_path.name
        nb = nbformat.read(executed if executed.exists() else nb_path, as_version=4)
        # the banner goes after the title cell so that the page title stays the chapter's
        nb.cells.insert(1, banner(args.profile, executed if executed.exists() else None))
        nbformat.write(nb, nb_path)
    # jupyter-book writes the HTML to <out>/_build/html
    cmd = [sys.executable, "-m", "jupyter_book", "build", str(src), "--path-output", str(out), "-W", "-n", "--keep-going"]
    jb = Path(sys.executable).with_name("jupyter-book")
    if jb.exists():
        cmd = [str(jb), *cmd[3:]]
    sys.exit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
