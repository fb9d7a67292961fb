"""Every chapter's exercises follow the contract that the book and `make student` rely on.

The contract (scripts/make_student.py): a markdown cell ``### Exercise N: <title>`` with
``*Difficulty:*``, ``*Time:*`` and a dropdown ``Hint``; then cells tagged ``solution``,
the first a markdown cell with a dropdown ``Solution``, code ones also tagged
``hide-cell``. Solution code runs with the chapter under nbval in ``make test``.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_student  # noqa: E402

NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
# independent of make_student's parser: any line that looks like an exercise heading
HEADING = re.compile(r"^#+\s*Exercise\s+(\d+)", re.M)


def md(text: str, *tags: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text, metadata={"tags": list(tags)})


def code(text: str, *tags: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(text, metadata={"tags": list(tags)})


STATEMENT = ("### Exercise 1: Rates\n\n*Difficulty:* basic\n*Time:* about 10 min, plus 2 s of CPU under smoke\n\n"
             "Compute the rate.\n\n```{admonition} Hint\n:class: dropdown\nCount spikes.\n```")
SOLUTION = "```{admonition} Solution\n:class: dropdown\nThe rate is the count over T.\n```"


def good_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [md("# Chapter"), code("x = 1"), md(STATEMENT), md(SOLUTION, "solution"),
                code("print(x)", "solution", "hide-cell"), md("## Summary")]
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_exercises_follow_the_contract(path):
    nb = nbformat.read(path, as_version=4)
    problems = make_student.contract_problems(nb, path.name)
    assert not problems, "\n".join(problems)
    # a heading that is almost right (wrong level, no colon) would escape the contract
    loose = [c for c in nb.cells if c.cell_type == "markdown" and HEADING.search(c.source)
             and not make_student.exercise_heading(c)]
    assert not loose, f"{path.name}: exercise headings not of the form '### Exercise N: title': " + \
        "; ".join(c.source.splitlines()[0] for c in loose)
    # an Exercises section written some other way (a numbered list) would pass vacuously
    section = any(c.cell_type == "markdown" and re.search(r"^#+\s*Exercises\b", c.source, re.M) for c in nb.cells)
    count = len(make_student.exercise_spans(nb))
    assert not section or count > 0, f"{path.name}: has an Exercises section but no '### Exercise N: title' cell"


def test_the_contract_check_accepts_a_complete_exercise():
    assert make_student.contract_problems(good_notebook()) == []


@pytest.mark.parametrize("break_it, expected", [
    (lambda nb: setattr(nb.cells[2], "source", STATEMENT.replace("*Difficulty:* basic\n", "")), "Difficulty"),
    (lambda nb: setattr(nb.cells[2], "source", STATEMENT.replace("*Difficulty:* basic", "*Difficulty:* easy")),
     "Difficulty"),
    (lambda nb: setattr(nb.cells[2], "source", STATEMENT.replace("*Time:*", "Time:")), "Time"),
    (lambda nb: setattr(nb.cells[2], "source", STATEMENT.replace(":class: dropdown\nCount", "Count")), "Hint"),
    (lambda nb: [c.metadata.update(tags=[]) for c in nb.cells[3:5]], "no cell tagged 'solution'"),
    (lambda nb: setattr(nb.cells[3], "source", "The rate is the count over T."), "Solution admonition"),
    (lambda nb: nb.cells[4].metadata.update(tags=["solution"]), "hide-cell"),
    (lambda nb: nb.cells.append(code("y = 2", "solution", "hide-cell")), "belongs to no exercise"),
    (lambda nb: setattr(nb.cells[2], "source", STATEMENT.replace("Exercise 1", "Exercise 2")), "numbered"),
])
def test_the_contract_check_catches_each_missing_piece(break_it, expected):
    nb = good_notebook()
    break_it(nb)
    problems = make_student.contract_problems(nb)
    assert any(expected in p for p in problems), problems


def test_student_copies_have_every_exercise_and_no_solution(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    for path in NOTEBOOKS:
        (book / path.name).write_bytes(path.read_bytes())
    nbformat.write(good_notebook(), book / "zz_crafted.ipynb")
    written = make_student.write_student(book, tmp_path / "student")
    assert sorted(p.name for p in written) == sorted(p.name for p in book.glob("*.ipynb"))
    for path in written:
        original = nbformat.read(book / path.name, as_version=4)
        student = nbformat.read(path, as_version=4)
        headings = lambda nb: [m.group(1) for c in nb.cells if c.cell_type == "markdown"  # noqa: E731
                               for m in HEADING.finditer(c.source)]
        assert headings(student) == headings(original), f"{path.name}: exercises lost"
        assert not [c for c in student.cells if "solution" in c.get("metadata", {}).get("tags", [])]
        assert not [c for c in student.cells if make_student.dropdown(c.source, "Solution")], \
            f"{path.name}: a Solution admonition outside a 'solution' cell"
        assert all(not c.outputs and c.execution_count is None for c in student.cells if c.cell_type == "code")
        kept = [c.source for c in original.cells if "solution" not in c.get("metadata", {}).get("tags", [])]
        assert [c.source for c in student.cells] == kept, f"{path.name}: cells other than solutions changed"
    crafted = nbformat.read(tmp_path / "student" / "zz_crafted.ipynb", as_version=4)
    assert [c.source for c in crafted.cells] == ["# Chapter", "x = 1", STATEMENT, "## Summary"]
