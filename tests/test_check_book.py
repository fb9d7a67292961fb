"""scripts/check_book.py fails on the problems a reader would see: crafted pages, real MathJax.

Each page is laid out like the book's (an ``article.bd-article`` content column) and loads
the offline MathJax 3 that the book serves (from the sphinx-mathjax-offline package), with
the configuration Sphinx writes. Needs headless Chromium (``make test`` installs it as root).
"""
from __future__ import annotations

import importlib.util
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import check_book  # noqa: E402

BROWSER = check_book.chromium()
needs_chromium = pytest.mark.skipif(BROWSER is None, reason="headless Chromium is not installed "
                                    "(apt-get install -y chromium; make test installs it as root)")


def mathjax_dir() -> Path:
    """Where sphinx-mathjax-offline keeps MathJax 3 (it is copied to _static/mathjax in a build)."""
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    base = Path(spec.origin).parent if spec and spec.origin else Path(sysconfig.get_paths()["purelib"]) / "sphinx-mathjax-offline"
    path = base / "static" / "mathjax"
    assert (path / "tex-chtml.js").exists(), f"MathJax 3 not found in {path}: is sphinx-mathjax-offline installed?"
    return path


# What Sphinx 7 puts in <head> for MathJax 3 (mathjax3_config and mathjax_path of the book),
# and the book theme's (pydata-sphinx-theme 0.17) rules for display math: every equation
# scrolls inside its own box, so an equation wider than the column is cut off at its edge.
HEAD = """<style>div.math, span.math {display: flex; max-width: 100%; overflow: hidden}
div.math mjx-container {flex-grow: 1; overflow: auto; padding-bottom: .2rem}</style>
<script>window.MathJax = {"options": {"processHtmlClass": "tex2jax_process|mathjax_process|math|output_area"}}</script>
<script defer="defer" src="_static/mathjax/tex-chtml.js"></script>"""


def page(tmp_path: Path, name: str, body: str, mathjax: bool = True) -> Path:
    """Write a one-column page like the book's and return its path."""
    static = tmp_path / "_static"
    if not static.exists():
        static.mkdir()
        (static / "mathjax").symlink_to(mathjax_dir(), target_is_directory=True)
    path = tmp_path / f"{name}.html"
    path.write_text(f"""<!DOCTYPE html><html><head><meta charset="utf-8">{HEAD if mathjax else ''}</head>
<body><main><article class="bd-article" role="main" style="width: 480px; margin-left: 40px">
<h1>{name}</h1><p>Some prose with inline math <span class="math notranslate nohighlight">\\(x^2 + 1\\)</span>.</p>
{body}
</article></main></body></html>""", encoding="utf-8")
    return path


DISPLAY = '<div class="math notranslate nohighlight">\\[{}\\]</div>'
WIDE_TEX = " + ".join(f"x_{{{i}}}^{{2}}" for i in range(40))
WIDE_TABLE = "<table><tr>" + "".join(f"<td>column_number_{i}</td>" for i in range(20)) + "</tr></table>"


@needs_chromium
def test_clean_math_passes(tmp_path):
    body = DISPLAY.format("\\begin{split}a &= b + c \\\\ d &= e\\end{split}") + DISPLAY.format("E = mc^2 \\tag{1}")
    body += "<table><tr><td>a</td><td>b</td></tr></table>"
    assert check_book.check_page(BROWSER, page(tmp_path, "clean", body)) == []


@needs_chromium
def test_tag_in_split_is_reported_with_mathjax_message(tmp_path):
    problems = check_book.check_page(BROWSER, page(tmp_path, "tag", DISPLAY.format("\\begin{split}a \\tag{1}\\end{split}")))
    assert len(problems) == 1, problems
    assert "tag.html: MathJax error" in problems[0] and "not allowed in split environment" in problems[0], problems


@needs_chromium
def test_untypeset_tex_is_reported(tmp_path):
    # no MathJax on the page: the math stays as TeX between its delimiters
    problems = check_book.check_page(BROWSER, page(tmp_path, "raw", DISPLAY.format("a = b"), mathjax=False))
    assert any("math is not rendered" in p for p in problems), problems
    assert any("TeX left untypeset" in p and "a = b" in p for p in problems), problems


@needs_chromium
def test_wide_equation_and_table_fail_unless_they_scroll(tmp_path):
    wide = DISPLAY.format(WIDE_TEX) + WIDE_TABLE
    problems = check_book.check_page(BROWSER, page(tmp_path, "wide", wide))
    assert any("display math is" in p and "no box around it scrolls" in p for p in problems), problems
    assert any("table is" in p and "column_number_0" in p for p in problems), problems
    boxed = f'<div style="overflow-x: auto">{DISPLAY.format(WIDE_TEX)}</div><div style="overflow-x: scroll">{WIDE_TABLE}</div>'
    assert check_book.check_page(BROWSER, page(tmp_path, "boxed", boxed)) == []


def test_papermill_cells_on_a_page_are_reported():
    html = '<div class="cell tag_parameters docutils container">profile = "quick"</div>'
    assert check_book.static_problems(html, "p.html") == ["p.html: shows papermill's 'parameters' cell (tag it remove-cell)"]
    html = '<div class="cell tag_injected-parameters tag_remove-input docutils container"></div>'
    assert "injected-parameters" in check_book.static_problems(html, "p.html")[0]
    assert check_book.static_problems('<div class="cell tag_hide-cell docutils container"></div>', "p.html") == []
