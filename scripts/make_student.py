"""Write the chapters without their solutions, for an instructor to hand out.

Every cell tagged ``solution`` is removed and every output is cleared; the exercises
(statement, difficulty, time and hint) stay. Output: _build/student/<chapter>.ipynb.

The exercise contract the chapters follow (tests/test_exercises.py checks it):

- one markdown cell per exercise, starting with ``### Exercise N: <title>`` and holding
  ``*Difficulty:* basic|intermediate|advanced`` and ``*Time:* ...`` (reading, coding and CPU time), the
  statement and a hint in a dropdown admonition titled ``Hint``;
- then cells tagged ``solution``: first a markdown cell with a dropdown admonition titled
  ``Solution``, optionally followed by code cells tagged ``solution`` and ``hide-cell``.

Usage: python scripts/make_student.py [--book book] [--out _build/student]
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = re.compile(r"^### Exercise (\d+): (\S.*)$")
# on lines of their own or side by side ("*Difficulty:* basic · *Time:* about 15 min ...")
DIFFICULTY = re.compile(r"\*Difficulty:\*\s+(basic|intermediate|advanced)\b")
TIME = re.compile(r"\*Time:\*\s+\w")
# a heading of level 1-3 ends the previous exercise (## Summary, ### Exercise 2: ...)
SECTION = re.compile(r"^#{1,3} ")


def tags(cell: nbformat.NotebookNode) -> list[str]:
    """The cell's metadata tags."""
    return list(cell.get("metadata", {}).get("tags", []))


def is_solution(cell: nbformat.NotebookNode) -> bool:
    return "solution" in tags(cell)


def exercise_heading(cell: nbformat.NotebookNode) -> re.Match | None:
    """The ``### Exercise N: title`` match when the cell opens an exercise."""
    if cell.cell_type != "markdown":
        return None
    first = cell.source.lstrip().split("\n", 1)[0].rstrip()
    return EXERCISE.match(first)


def dropdown(source: str, title: str) -> bool:
    """Whether ``source`` holds a MyST admonition titled ``title`` with ``:class: dropdown``
    (backtick or colon fence)."""
    lines = source.splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"^\s*(`{{3,}}|:{{3,}})\{{admonition\}}\s+{re.escape(title)}\s*$", line):
            for option in lines[i + 1:]:
                option = option.strip()
                if not option.startswith(":"):
                    break
                if re.match(r"^:class:.*\bdropdown\b", option):
                    return True
    return False


def exercise_spans(nb: nbformat.NotebookNode) -> list[tuple[int, int]]:
    """(first, end) cell indices of each exercise: from its heading cell to the next
    exercise or the next non-solution heading of level 1-3."""
    spans = []
    starts = [i for i, c in enumerate(nb.cells) if exercise_heading(c)]
    for start in starts:
        end = start + 1
        while end < len(nb.cells):
            cell = nb.cells[end]
            if exercise_heading(cell) or (cell.cell_type == "markdown" and not is_solution(cell)
                                          and SECTION.match(cell.source.lstrip())):
                break
            end += 1
        spans.append((start, end))
    return spans


def contract_problems(nb: nbformat.NotebookNode, name: str = "notebook") -> list[str]:
    """Every way ``nb`` breaks the exercise contract, one line each (empty: it complies)."""
    problems = []
    spans = exercise_spans(nb)
    numbers = [int(exercise_heading(nb.cells[s]).group(1)) for s, _ in spans]
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"{name}: exercises are numbered {numbers}, not 1..{len(numbers)}")
    owned = set()
    for start, end in spans:
        cell = nb.cells[start]
        label = f"{name}: Exercise {exercise_heading(cell).group(1)} (cell {start})"
        if is_solution(cell):
            problems.append(f"{label}: the statement cell is tagged 'solution' and would vanish from the student copy")
        if not DIFFICULTY.search(cell.source):
            problems.append(f"{label}: no '*Difficulty:* basic|intermediate|advanced' line")
        if not TIME.search(cell.source):
            problems.append(f"{label}: no '*Time:* ...' line")
        if not dropdown(cell.source, "Hint"):
            problems.append(f"{label}: no Hint admonition with ':class: dropdown'")
        solutions = [i for i in range(start + 1, end) if is_solution(nb.cells[i])]
        owned.update(solutions)
        if not solutions:
            problems.append(f"{label}: no cell tagged 'solution' before the next exercise or section")
            continue
        first = nb.cells[solutions[0]]
        if first.cell_type != "markdown" or not dropdown(first.source, "Solution"):
            problems.append(f"{label}: its first 'solution' cell is not a markdown cell with a "
                            "Solution admonition with ':class: dropdown'")
        for i in solutions:
            if nb.cells[i].cell_type == "code" and "hide-cell" not in tags(nb.cells[i]):
                problems.append(f"{label}: solution code cell {i} is not tagged 'hide-cell'")
    for i, cell in enumerate(nb.cells):
        if is_solution(cell) and i not in owned:
            problems.append(f"{name}: cell {i} is tagged 'solution' but belongs to no exercise")
    return problems


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without its solution cells and with every output cleared."""
    out = nbformat.from_dict(nb)  # deep copy
    out.cells = [c for c in out.cells if not is_solution(c)]
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return out


def write_student(book: Path = ROOT / "book", out: Path = ROOT / "_build" / "student") -> list[Path]:
    """Write the student copy of every chapter of ``book`` to ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(book.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        target = out / path.name
        nbformat.write(student_notebook(nb), target)
        written.append(target)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--book", type=Path, default=ROOT / "book")
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "student")
    args = ap.parse_args()
    total = 0
    for path in write_student(args.book, args.out):
        nb = nbformat.read(path, as_version=4)
        n = len(exercise_spans(nb))
        total += n
        print(f"{path}: {n} exercises, no solutions")
    print(f"{total} exercises in {args.out}")


if __name__ == "__main__":
    main()
