"""The book's Status page: how, when and on what each chapter of a run was executed.

build_book.py calls :func:`status_markdown` with the records that run_chapter.py wrote
(results/<profile>/run_facts/<chapter>.json) and writes the result to book/status.md in
the build source, so that every fact on the page comes from the run itself.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

# Rows of the software and hardware table: (label, how to read it from a record)
RUN_ROWS = [
    ("Python", lambda r: r.get("python")),
    ("torch", lambda r: (r.get("packages") or {}).get("torch")),
    ("numpy", lambda r: (r.get("packages") or {}).get("numpy")),
    ("negspike", lambda r: (r.get("packages") or {}).get("negspike")),
    ("pandas", lambda r: (r.get("packages") or {}).get("pandas")),
    ("papermill", lambda r: (r.get("packages") or {}).get("papermill")),
    ("CPU", lambda r: r.get("cpu")),
    ("CPU cores (usable)", lambda r: None if r.get("cpu_count") is None
     else f"{r['cpu_count']} ({r.get('cpus_usable', r['cpu_count'])})"),
    ("GPU", lambda r: (r.get("gpu") or "none") if "gpu" in r else None),
    ("Platform", lambda r: r.get("platform")),
]


def duration(seconds: float | None) -> str:
    """``42 s`` or ``3 min 05 s``."""
    if seconds is None:
        return "not recorded"
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def when(stamp: str | None) -> str:
    """An ISO time stamp as ``YYYY-MM-DD HH:MM`` UTC."""
    if not stamp:
        return "not recorded"
    t = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    if t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M")


def cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def status_markdown(profile: str, records: list[dict], build: dict) -> str:
    """The page as MyST Markdown. ``records``: one dict per chapter (``chapter``, ``title``,
    ``executed`` and what run_chapter.py recorded); ``build``: versions at build time."""
    lines = ["# Status", "",
             f"This page is written when the book is built, from the records that "
             f"`make reproduce PROFILE={profile}` left for each chapter (`results/{profile}/run_facts/`, "
             f"`results/{profile}/chapter_times/` and papermill's metadata in the executed notebooks). "
             "Nothing on it is typed by hand: it says under which profile, when and on what machine "
             "each page's outputs were computed.", "",
             "## Execution statistics", "",
             "| Chapter | Profile | Run time | Executed (UTC) |", "|---|---|---|---|"]
    ran = [r for r in records if r["executed"]]
    for r in records:
        if r["executed"]:
            lines.append(f"| {{doc}}`{r['chapter']}` | {cell(r.get('profile', profile))} | "
                         f"{duration(r.get('seconds'))} | {when(r.get('finished_utc'))} |")
        else:
            lines.append(f"| {{doc}}`{r['chapter']}` | not executed | | |")
    timed = [float(r["seconds"]) for r in ran if r.get("seconds") is not None]
    lines += ["", f"{len(ran)} of {len(records)} chapters executed under this profile"
              + (f", {duration(sum(timed))} of execution in total." if timed else ".")
              + " A run time includes starting the kernel; steps cached in `data/cache/` by an "
              "earlier run are loaded, not recomputed, so a re-run is faster than a first run.", ""]

    lines += ["## Software and hardware of the run", ""]
    described = [r for r in ran if "python" in r]
    if not described:
        lines += ["No chapter of this run recorded its environment (`scripts/run_chapter.py` writes it "
                  "to `run_facts/`; runs made before it did have none).", ""]
    else:
        if len(described) < len(ran):
            missing = len(ran) - len(described)
            plural = missing > 1
            lines += [f"{missing} executed chapter{'s' if plural else ''} ran before environments were "
                      f"recorded and {'are' if plural else 'is'} not covered by this table.", ""]
        lines += ["| component | version or model |", "|---|---|"]
        for label, read in RUN_ROWS:
            values: dict[str, list[str]] = defaultdict(list)
            for r in described:
                values[str(read(r) if read(r) is not None else "not recorded")].append(r["chapter"])
            if len(values) == 1:
                text = next(iter(values))
            else:  # chapters that ran in different environments: say which ran where
                text = "; ".join(f"{v} ({', '.join(chs)})" for v, chs in values.items())
            lines.append(f"| {label} | {cell(text)} |")
        lines.append("")

    lines += ["## Build", "", "The software that rendered these pages.", "",
              "| component | version |", "|---|---|", f"| Built (UTC) | {when(build.get('built_utc'))} |",
              f"| Python | {cell(build.get('python'))} |"]
    for name, version in (build.get("packages") or {}).items():
        lines.append(f"| {name} | {cell(version or 'not installed')} |")
    return "\n".join(lines) + "\n"
