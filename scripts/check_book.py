"""Open every page of the rendered book in headless Chromium and check what a reader sees.

A page fails when it shows a Python traceback; when MathJax rejected an equation (an
element with a ``data-mjx-error`` attribute or MathJax's ``merror`` output, reported with
MathJax's message, e.g. "\\tag not allowed in split environment"); when TeX was left
untypeset (no MathJax output on a page whose source has math, a math element still
holding its TeX delimiters, or raw TeX in the prose); when a display equation or a table
is wider than the content column, unless it sits in a box that scrolls sideways by
design (CSS ``overflow-x: auto|scroll``); when an image does not load; or when it shows
papermill's parameter cells. Optionally saves screenshots of chosen pages.

Usage: python scripts/check_book.py _build/html [--screenshots DIR --pages book/a.html ...] [--jobs N]
"""
from __future__ import annotations

import argparse
import html as html_lib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
# Pages are laid out at a laptop's width: the overflow check depends on it.
WINDOW = "--window-size=1280,900"
# Injected before </body>. Once the page has loaded and MathJax has finished typesetting,
# it writes what it measured as JSON into <body data-book-check="...">, which --dump-dom
# returns: images that failed to load, MathJax errors, math left as TeX, and display math
# or tables that do not fit the content column (scrollWidth against the room the column,
# or the element's parent, leaves) without a scrolling box around them.
PROBE = r"""<script>(function () {
  function texOf(node) {
    // MathJax keeps each equation's TeX source in its list of math items
    try {
      for (const item of MathJax.startup.document.math) {
        if (item.typesetRoot && (item.typesetRoot === node || item.typesetRoot.contains(node))) return item.math;
      }
    } catch (e) {}
    return "";
  }
  function clip(s, n) { s = (s || "").replace(/\s+/g, " ").trim(); return s.length > n ? s.slice(0, n) + "..." : s; }
  function measure() {
    const out = {images: [], errors: [], untypeset: [], overflow: []};
    out.images = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src);
    // One report per rejected equation: the error nodes nest (merror inside mjx-container).
    const seen = new Set();
    for (const el of document.querySelectorAll("[data-mjx-error], mjx-merror, merror")) {
      const root = el.closest("mjx-container") || el;
      if (seen.has(root)) continue;
      seen.add(root);
      const err = root.querySelector("[data-mjx-error]") || el;
      out.errors.push({message: clip(err.getAttribute("data-mjx-error") || err.textContent, 200), tex: clip(texOf(root), 120)});
    }
    // Sphinx writes math as <span|div class="math">\(..\) or \[..\]</span|div>; MathJax replaces
    // the delimited TeX by an mjx-container, so delimiters still there mean it never typeset it.
    for (const el of document.querySelectorAll(".math")) {
      if (!el.querySelector("mjx-container") && /\\\(|\\\[|\$\$|\\begin\{/.test(el.textContent)) out.untypeset.push(clip(el.textContent, 80));
    }
    const column = document.querySelector("article.bd-article") || document.querySelector("[role=main]") || document.body;
    const colRect = column.getBoundingClientRect();
    const scrolls = el => /auto|scroll/.test(getComputedStyle(el).overflowX);
    for (const el of column.querySelectorAll('mjx-container[display="true"], table')) {
      // a box around the element, inside the column, that scrolls sideways is a design choice.
      // The element's own overflow does not count: the theme gives every mjx-container
      // overflow:auto, which only hides the cut-off part behind a scroll bar. The column
      // itself scrolling would move the whole page, so it does not count either.
      let boxed = false;
      for (let a = el.parentElement; a && a !== column; a = a.parentElement) if (scrolls(a)) { boxed = true; break; }
      if (boxed || el.offsetParent === null) continue;  // scrolls by design, or hidden (e.g. a closed dropdown)
      const rect = el.getBoundingClientRect();
      let width = Math.max(el.scrollWidth, rect.width);
      let room = Math.min(el.parentElement.clientWidth, column.clientWidth);
      let right = rect.left + width;  // where the content ends on screen
      if (getComputedStyle(el).overflowX !== "visible") {
        // a box that clips or scrolls its own content (the theme's mjx-container) shows
        // clientWidth of its scrollWidth; its border box may be wider by a scroll bar
        width = el.scrollWidth;
        room = Math.min(room, el.clientWidth);
        right = rect.right;
      }
      const pastColumn = right - colRect.right;
      if (width > room + 1 || pastColumn > 1) {
        const what = el.tagName.toLowerCase() === "table" ? "table" : "display math";
        const text = what === "table" ? el.textContent : texOf(el);
        out.overflow.push({what: what, width: Math.round(width), room: Math.round(room), text: clip(text, 80)});
      }
    }
    document.body.setAttribute("data-book-check", JSON.stringify(out));
  }
  window.addEventListener("load", () => setTimeout(() => {
    const mj = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
    (mj ? mj.then(measure, measure) : Promise.resolve().then(measure));
  }, 1500));
})();</script>"""


def chromium() -> str | None:
    """Path of a headless-capable Chromium, or None when none is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def dump_dom(browser: str, url: str) -> str:
    """The DOM of ``url`` after its scripts ran, as Chromium serialises it."""
    with tempfile.TemporaryDirectory() as profile:
        try:
            res = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=8000", WINDOW,
                                  "--dump-dom", url], capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return ""  # reported as "Chromium returned no DOM"
    return res.stdout


def screenshot(browser: str, url: str, out: Path) -> None:
    """Save a PNG of ``url`` at 1280x1600."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=8000",
                        "--window-size=1280,1600", f"--screenshot={out}", url], capture_output=True, timeout=120)


def static_problems(html: str, name: str) -> list[str]:
    """Problems visible in the HTML source itself: papermill's cells shown on the page
    (build_book.py tags them remove-cell so that the page starts with prose)."""
    shown = sorted(set(re.findall(r'class="[^"]*\btag_(injected-parameters|parameters)\b', html)))
    return [f"{name}: shows papermill's '{tag}' cell (tag it remove-cell)" for tag in shown]


def check_page(browser: str, page: Path, name: str | None = None) -> list[str]:
    """Open ``page`` (an HTML file) in Chromium; return one line per problem a reader would see."""
    name = name or page.name
    html = page.read_text(encoding="utf-8")
    if 'http-equiv="Refresh"' in html or 'http-equiv="refresh"' in html:
        return []  # a redirect (index.html -> the root chapter)
    # the probe copy sits next to the page so that relative links (_static, images) resolve
    probe_page = page.with_name(page.stem + ".__probe__.html")
    probe_page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    try:
        dom = dump_dom(browser, probe_page.as_uri())
    finally:
        probe_page.unlink()
    if not dom:
        return [f"{name}: Chromium returned no DOM"]
    problems = static_problems(html, name)
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", dom, flags=re.S))
    # prose only: code listings legitimately hold TeX in strings
    prose = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style|pre)[^>]*>.*?</\1>", " ", dom, flags=re.S))
    if "Traceback (most recent call last)" in text or re.search(r"\b\w+Error\b: ", text) and "ansi-red" in dom:
        problems.append(f"{name}: shows a Python traceback")
    has_math = 'class="math' in html or "\\(" in html or "\\[" in html
    if has_math and "<mjx-container" not in dom:
        problems.append(f"{name}: math is not rendered (no MathJax output)")
    raw = re.search(r"\$\$|\\begin\{(equation|align)|\$[^$\n]{0,80}\\[a-zA-Z]+[^$\n]{0,80}\$", prose)
    if raw:
        problems.append(f"{name}: raw TeX left in the text: {raw.group(0)[:60]!r}")
    m = re.search(r'<body[^>]*\sdata-book-check="([^"]*)"', dom)
    if m is None:
        return problems + [f"{name}: the in-page check did not run (page never finished loading?)"]
    found = json.loads(html_lib.unescape(m.group(1)))
    for err in found["errors"]:
        tex = f" in {err['tex']}" if err["tex"] else ""
        problems.append(f"{name}: MathJax error: {err['message']}{tex}")
    for tex in found["untypeset"]:
        problems.append(f"{name}: TeX left untypeset: {tex}")
    for box in found["overflow"]:
        problems.append(f"{name}: {box['what']} is {box['width']} px wide with {box['room']} px of room "
                        f"and no box around it scrolls sideways: {box['text']}")
    if found["images"]:
        problems.append(f"{name}: broken images {found['images']}")
    return problems


def book_pages(html_dir: Path) -> list[Path]:
    """The reader-facing pages of a built book (no search page, index or static files)."""
    return sorted(p for p in html_dir.rglob("*.html")
                  if "_static" not in p.parts and "__probe__" not in p.name
                  and p.name not in ("search.html", "genindex.html"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("html", type=Path)
    ap.add_argument("--screenshots", type=Path)
    ap.add_argument("--pages", nargs="*", default=[], help="pages to screenshot, relative to the html folder")
    ap.add_argument("--jobs", type=int, default=2, help="pages checked at once (one Chromium each)")
    args = ap.parse_args()
    args.html = args.html.resolve()
    browser = chromium()
    if browser is None:
        sys.exit("error: headless Chromium not found; install it with 'apt-get install -y chromium' "
                 "(make test does this as root)")
    pages = book_pages(args.html)
    if not pages:
        sys.exit(f"error: no HTML pages under {args.html}; run make book first")
    names = [str(p.relative_to(args.html)) for p in pages]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda pn: check_page(browser, *pn), zip(pages, names)))
    problems = []
    for name, found in zip(names, results):
        print(f"{'FAIL' if found else 'ok  '} {name}")
        problems += found
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
        for name in args.pages:
            screenshot(browser, (args.html / name).as_uri(), args.screenshots / (Path(name).stem + ".png"))
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"{len(pages)} pages checked: no tracebacks, math rendered without errors, "
          "equations and tables fit, images loaded")


if __name__ == "__main__":
    main()
