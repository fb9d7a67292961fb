"""Render the book with the outputs of a reproduction run.

Copies the book sources to <out>/_build/src, replaces each chapter notebook by its executed
copy from results/<profile>/notebooks/ (with a banner naming the profile), hides
papermill's `parameters` and `injected-parameters` cells (tag `remove-cell`), writes a
Status page (book/status.md) from the run's own records, and runs jupyter-book with
warnings as errors. Chapters that were not executed are rendered without outputs and say so.

The repository URL is one setting: `repository.url` in _config.yml (empty by default),
overridden by --repo-url or the environment variable NEGSPIKE_BOOK_REPO_URL. Only when it is
set do the pages get the repository button and the Colab/Binder launch buttons; with no URL
they have none (a button to a repository that does not exist would be a dead link).

Usage: python scripts/build_book.py --profile quick [--out DIR] [--repo-url URL]
(HTML in DIR/_build/html; default DIR: the repository root)
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
from importlib import metadata
from pathlib import Path

import nbformat
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from status_page import status_markdown  # noqa: E402

LAUNCH = {"colab_url": "https://colab.research.google.com", "binderhub_url": "https://mybinder.org"}
# papermill's cells: the profile assignment says nothing to a reader, so pages start with prose
HIDDEN_TAGS = ("parameters", "injected-parameters")


def banner(profile: str, executed: Path | None) -> nbformat.NotebookNode:
    """A note under the chapter title naming the profile the outputs come from."""
    if executed is None:
        text = (f"```{{note}}\nThis chapter has not been executed under the `{profile}` profile yet: "
                f"run `make reproduce PROFILE={profile}` to see its outputs.\n```")
    else:
        when = dt.datetime.fromtimestamp(executed.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        text = (f"```{{note}}\nOutputs on this page come from `make reproduce PROFILE={profile}` "
                f"(profile **{profile}**, executed {when}; see the {{doc}}`status` page).\n```")
    return nbformat.v4.new_markdown_cell(text)


def hide_papermill_cells(nb: nbformat.NotebookNode) -> int:
    """Tag the parameters and injected-parameters cells `remove-cell`; returns how many."""
    count = 0
    for cell in nb.cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if any(t in tags for t in HIDDEN_TAGS) and "remove-cell" not in tags:
            tags.append("remove-cell")
            count += 1
    return count


def configure(config: dict, repo_url: str) -> dict:
    """The book's _config.yml with the repository and launch buttons on only when a URL is set."""
    config = dict(config)
    config["repository"] = {**(config.get("repository") or {}), "url": repo_url}
    html = dict(config.get("html") or {})
    html["use_repository_button"] = bool(repo_url)
    # edit and issue buttons also need a real repository; keep them off without one
    if not repo_url:
        html["use_edit_page_button"] = html["use_issues_button"] = False
    config["html"] = html
    launch = dict(config.get("launch_buttons") or {})
    for key, url in LAUNCH.items():
        launch[key] = url if repo_url else ""
    if not repo_url:  # every other launch service needs the repository too
        launch.update(jupyterhub_url="", jupyterlite_url="", deepnote_url="", thebe=False)
    config["launch_buttons"] = launch
    return config


def add_status_to_toc(toc: dict) -> dict:
    """Append the Status page to the table of contents unless _toc.yml already lists it."""
    entries = toc.setdefault("chapters", [])
    if not any(str(e.get("file", "")).removesuffix(".md") == "book/status" for e in entries):
        entries.append({"file": "book/status"})
    return toc


def chapter_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    """The first `# ` heading of the notebook, else ``fallback``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def build_facts() -> dict:
    """Versions of what renders the book (recorded at build time, not run time)."""
    versions = {}
    for name in ("jupyter-book", "sphinx", "myst-nb"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"built_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(), "packages": versions}


def chapter_records(profile: str, chapters: list[tuple[str, str, Path | None]]) -> list[dict]:
    """One record per chapter from the run's own files: results/<profile>/run_facts/<chapter>.json
    (written by run_chapter.py), else papermill's metadata in the executed notebook and the
    chapter_times CSV (runs made before run_facts existed)."""
    results = ROOT / "results" / profile
    records = []
    for name, title, executed in chapters:
        rec: dict = {"chapter": name, "title": title, "executed": executed is not None}
        facts_file = results / "run_facts" / f"{name}.json"
        if executed is not None and facts_file.exists():
            rec.update(json.loads(facts_file.read_text()))
        elif executed is not None:
            pm = nbformat.read(executed, as_version=4).metadata.get("papermill", {})
            rec["profile"] = (pm.get("parameters") or {}).get("profile", profile)
            rec["finished_utc"] = pm.get("end_time")
            times = results / "chapter_times" / f"{name}.csv"
            rec["seconds"] = float(pd.read_csv(times)["seconds"].iloc[-1]) if times.exists() else pm.get("duration")
        records.append(rec)
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--out", type=Path, default=ROOT)
    ap.add_argument("--repo-url", default=os.environ.get("NEGSPIKE_BOOK_REPO_URL"),
                    help="the book's public repository: turns on the repository and Colab/Binder buttons "
                         "(default: $NEGSPIKE_BOOK_REPO_URL, else repository.url in _config.yml)")
    args = ap.parse_args()
    out = args.out.resolve()
    src = out / "_build" / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo_url = (args.repo_url if args.repo_url is not None else (config.get("repository") or {}).get("url")) or ""
    (src / "_config.yml").write_text(yaml.safe_dump(configure(config, repo_url.strip()), sort_keys=False))
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    (src / "_toc.yml").write_text(yaml.safe_dump(add_status_to_toc(toc), sort_keys=False))
    shutil.copytree(ROOT / "book", src / "book")
    runs = ROOT / "results" / args.profile / "notebooks"
    toc_files = [str(e.get("file", "")) for e in toc.get("chapters", [])]
    chapters = []
    for nb_path in sorted((src / "book").glob("*.ipynb")):
        executed = runs / nb_path.name
        nb = nbformat.read(executed if executed.exists() else nb_path, as_version=4)
        hide_papermill_cells(nb)
        # the banner goes after the title cell so that the page title stays the chapter's
        nb.cells.insert(1, banner(args.profile, executed if executed.exists() else None))
        nbformat.write(nb, nb_path)
        chapters.append((nb_path.stem, chapter_title(nb, nb_path.stem), executed if executed.exists() else None))
    # the Status page lists chapters in the order of the table of contents
    order = {Path(f).name: i for i, f in enumerate(toc_files)}
    chapters = sorted((c for c in chapters if c[0] in order), key=lambda c: order[c[0]])
    status = status_markdown(args.profile, chapter_records(args.profile, chapters), build_facts())
    (src / "book" / "status.md").write_text(status, encoding="utf-8")
    # jupyter-book writes the HTML to <out>/_build/html
    cmd = [sys.executable, "-m", "jupyter_book", "build", str(src), "--path-output", str(out), "-W", "-n", "--keep-going"]
    jb = Path(sys.executable).with_name("jupyter-book")
    if jb.exists():
        cmd = [str(jb), *cmd[3:]]
    sys.exit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
