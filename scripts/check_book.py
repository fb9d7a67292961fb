"""Open every page of the rendered book in headless Chromium and check what a reader sees.

Fails when a page shows a Python traceback, when math was left unrendered (no MathJax
output on a page whose source has math, or raw TeX delimiters in the text), or when an
image does not load. Optionally saves screenshots of chosen pages.

Usage: python scripts/check_book.py _build/html [--screenshots DIR --pages book/a.html ...]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
# Counts images that failed to load after the page settled, and writes it into the DOM.
PROBE = """<script>window.addEventListener('load', () => setTimeout(() => {
  const bad = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src);
  document.body.setAttribute('data-broken-images', JSON.stringify(bad));
}, 1500));</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("error: headless Chromium not found; install it with 'apt-get install -y chromium' (make test does this as root)")


def dump_dom(browser: str, url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        res = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=8000",
                              "--dump-dom", url], capture_output=True, text=True, timeout=120)
    return res.stdout


def screenshot(browser: str, url: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=8000",
                        "--window-size=1280,1600", f"--screenshot={out}", url], capture_output=True, timeout=120)


def check_page(browser: str, page: Path) -> list[str]:
    html = page.read_text(encoding="utf-8")
    if 'http-equiv="Refresh"' in html or 'http-equiv="refresh"' in html:
        return []  # a redirect (index.html -> the root chapter)
    probe_page = page.with_name(page.stem + ".__probe__.html")
    probe_page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    try:
        dom = dump_dom(browser, probe_page.as_uri())
    finally:
        probe_page.unlink()
    problems = []
    if not dom:
        return [f"{page.name}: Chromium returned no DOM"]
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", dom, flags=re.S))
    # prose only: code listings legitimately hold TeX in strings
    prose = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style|pre)[^>]*>.*?</\1>", " ", dom, flags=re.S))
    if "Traceback (most recent call last)" in text or re.search(r"\b\w+Error\b: ", text) and "ansi-red" in dom:
        problems.append(f"{page.name}: shows a Python traceback")
    has_math = 'class="math' in html or "\\(" in html or "\\[" in html
    if has_math and "mjx-container" not in dom:
        problems.append(f"{page.name}: math is not rendered (no MathJax output)")
    raw = re.search(r"\$\$|\\begin\{(equation|align)|\$[^$\n]{0,80}\\[a-zA-Z]+[^$\n]{0,80}\$", prose)
    if raw:
        problems.append(f"{page.name}: raw TeX left in the text: {raw.group(0)[:60]!r}")
    m = re.search(r'data-broken-images="([^"]*)"', dom)
    if m is None:
        problems.append(f"{page.name}: the image check did not run")
    elif m.group(1) not in ("[]", "&quot;[]&quot;") and m.group(1).strip("[]&quot;"):
        problems.append(f"{page.name}: broken images {m.group(1)}")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("html", type=Path)
    ap.add_argument("--screenshots", type=Path)
    ap.add_argument("--pages", nargs="*", default=[], help="pages to screenshot, relative to the html folder")
    args = ap.parse_args()
    args.html = args.html.resolve()
    browser = chromium()
    pages = sorted(p for p in args.html.rglob("*.html") if "_static" not in p.parts and p.name not in ("search.html", "genindex.html"))
    if not pages:
        sys.exit(f"error: no HTML pages under {args.html}; run make book first")
    problems = []
    for page in pages:
        found = check_page(browser, page)
        print(f"{'FAIL' if found else 'ok  '} {page.relative_to(args.html)}")
        problems += found
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
        for name in args.pages:
            screenshot(browser, (args.html / name).as_uri(), args.screenshots / (Path(name).stem + ".png"))
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"{len(pages)} pages checked: no tracebacks, math rendered, images loaded")


if __name__ == "__main__":
    main()
