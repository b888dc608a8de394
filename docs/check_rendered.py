"""Open every page of the built site in a headless browser, offline, and check what a reader sees.

    python docs/check_rendered.py [docs/_build/html]

Each page is loaded from ``file://`` by Chromium (Debian's ``chromium`` or
``chromium-headless-shell``) with every host name unresolvable and a dead
proxy, so nothing can come from the network; the page's DOM after its
scripts ran is then checked:

- every formula (Sphinx's ``math`` elements) was typeset by MathJax, so no
  raw TeX is left on the page;
- no script, style sheet or image is loaded from another host.

Exit status 0 when every page passes, 1 otherwise (each problem on a line),
2 when no browser is found.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9"]
REMOTE = re.compile(r"""<(?:script|link|img)\b[^>]*(?:src|href)=["'](?:https?:)?//""", re.I)


class _Formulas(HTMLParser):
    """Collects the text of every math element that holds no typeset MathJax output."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[str] = []
        self.count = 0
        self._open: dict[str, object] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if self._open is None and "math" in classes and "notranslate" in classes:
            self._open = {"depth": 0, "typeset": False, "text": ""}
            self.count += 1
        if self._open is not None:
            self._open["depth"] = int(self._open["depth"]) + 1  # type: ignore[call-overload]
            if tag == "mjx-container":
                self._open["typeset"] = True

    def handle_endtag(self, tag: str) -> None:
        if self._open is None:
            return
        self._open["depth"] = int(self._open["depth"]) - 1  # type: ignore[call-overload]
        if self._open["depth"] == 0:
            if not self._open["typeset"]:
                self.raw.append(str(self._open["text"]).strip()[:60])
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] = str(self._open["text"]) + data


def rendered_dom(browser: str, page: Path) -> str:
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", *OFFLINE,
        "--virtual-time-budget=20000", "--dump-dom", page.resolve().as_uri(),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


def check_page(browser: str, page: Path) -> tuple[int, list[str]]:
    """The number of formulas on ``page`` and its problems."""
    problems = []
    source = page.read_text(encoding="utf-8")
    for match in REMOTE.finditer(source):
        problems.append(f"{page.name}: loads from another host: {match.group(0)[:80]}")
    formulas = _Formulas()
    formulas.feed(rendered_dom(browser, page))
    problems += [f"{page.name}: formula left as raw TeX: {text!r}" for text in formulas.raw]
    return formulas.count, problems


def main(argv: list[str]) -> int:
    site = Path(argv[1] if len(argv) > 1 else "docs/_build/html")
    browser = next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        print("no Chromium found (apt-get install chromium-headless-shell)", file=sys.stderr)
        return 2
    pages = sorted(p for p in site.glob("*.html") if p.name not in ("genindex.html", "search.html"))
    if not pages:
        print(f"{site}: no built pages", file=sys.stderr)
        return 1
    total, problems = 0, []
    for page in pages:
        count, found = check_page(browser, page)
        total += count
        problems += found
    for problem in problems:
        print(problem)
    print(f"{len(pages)} pages, {total} formulas, {len(problems)} problem(s), offline ({browser})")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
