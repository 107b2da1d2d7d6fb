"""Look at the built site the way a reader's browser does, offline.

Usage (after ``make docs``; needs Debian's ``chromium``, which the tests do not)::

    python docs/check_site.py [docs/_build/html] [--screenshots DIR]

For every page it checks, with no network:

* every local link, image and script the page names exists in the build;
* the page loads no script from the web (the site must work offline);
* after headless Chromium has run the page's scripts, every maths element was
  typeset by MathJax and none is a MathJax error (``merror``).

``--screenshots DIR`` also saves a 1280-pixel-wide PNG of each page to look at.
Exits 1 and lists the problems if there are any.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import html.parser
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

CHROMIUM_FLAGS = (  # headless, and no background connections on a closed network
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1280,1600", "--virtual-time-budget=10000",
)


class _Refs(html.parser.HTMLParser):
    """The URLs a page names, and how many maths elements it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []  # (tag, url)
        self.maths = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("href", "src"):
            if attrs.get(key):
                self.urls.append((tag, attrs[key]))
        if "math" in (attrs.get("class") or "").split() and tag in ("span", "div"):
            self.maths += 1


def static_problems(site: pathlib.Path, page: pathlib.Path, refs: _Refs) -> list[str]:
    problems = []
    for tag, url in refs.urls:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme in ("http", "https"):
            if tag == "script":
                problems.append(f"loads a script from the web: {url}")
            continue
        if parsed.scheme or not parsed.path:  # mailto:, javascript:, same-page anchors
            continue
        target = (page.parent / urllib.parse.unquote(parsed.path)).resolve()
        if not target.exists() or site.resolve() not in (target, *target.parents):
            problems.append(f"broken {tag} reference: {url}")
    return problems


def rendered_problems(chromium: str, page: pathlib.Path, refs: _Refs,
                      screenshots: pathlib.Path | None, name: str) -> list[str]:
    with tempfile.TemporaryDirectory() as profile:
        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
        if screenshots is not None:
            subprocess.run([chromium, *flags, f"--screenshot={screenshots / name}.png",
                            page.as_uri()], capture_output=True, timeout=120)
    problems = []
    typeset = len(re.findall(r"<mjx-container", dom))
    if typeset < refs.maths:
        problems.append(f"{refs.maths - typeset} of {refs.maths} maths elements not typeset")
    errors = len(re.findall(r"<mjx-merror|data-mjx-error", dom))
    if errors:
        problems.append(f"{errors} MathJax errors (merror)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", default="docs/_build/html")
    parser.add_argument("--screenshots", type=pathlib.Path, default=None)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args(argv)
    # Absolute: the pages are handed to Chromium as file:// URIs.
    site = pathlib.Path(args.site).resolve()
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.parts)
    if not pages:
        sys.exit(f"no HTML pages under {site}: run `make docs` first")
    if shutil.which(args.chromium) is None:
        sys.exit(f"{args.chromium!r} not found: install Debian's chromium "
                 "(apt-get install chromium) or pass --chromium PATH")
    if args.screenshots is not None:
        args.screenshots = args.screenshots.resolve()
        args.screenshots.mkdir(parents=True, exist_ok=True)

    def check(page: pathlib.Path) -> tuple[str, list[str], int]:
        refs = _Refs()
        refs.feed(page.read_text(encoding="utf-8"))
        name = str(page.relative_to(site).with_suffix("")).replace("/", "_")
        problems = static_problems(site, page, refs)
        problems += rendered_problems(args.chromium, page, refs, args.screenshots, name)
        return str(page.relative_to(site)), problems, refs.maths

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(check, pages))
    failed = 0
    for name, problems, maths in results:
        failed += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '} {name} ({maths} maths)")
        for problem in problems:
            print(f"       {problem}")
    print(f"{len(pages)} pages, {failed} with problems")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
