"""Headless Chromium (Debian's package) for the HTML report tests: DOM after scripts ran, and a screenshot.

The flags are the ones this machine needs: no sandbox as root, no GPU, and no background networking (the
machine has no network; without these flags Chromium keeps trying to reach Google's services).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def chromium() -> str:
    """Path of the browser; skip (with the reason) only where the apt package is truly absent."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium not installed (apt-get install chromium; listed in scripts/apt/reporting.txt)")


def _run(args: list[str], timeout: float = 90) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            timeout=timeout,
            check=False,
        )


def dump_dom(page: Path, budget_ms: int = 10000, fragment: str = "") -> str:
    """The DOM after the page's scripts ran (virtual time lets plotly finish drawing)."""
    url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    done = _run([f"--virtual-time-budget={budget_ms}", "--dump-dom", url])
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode("utf-8", errors="replace")


def screenshot(page: Path, out: Path, width: int = 1024, height: int = 1536, budget_ms: int = 10000) -> Path:
    done = _run(
        [
            f"--virtual-time-budget={budget_ms}",
            f"--window-size={width},{height}",
            f"--screenshot={out}",
            page.resolve().as_uri(),
        ]
    )
    assert done.returncode == 0 and out.exists(), done.stderr.decode(errors="replace")[-2000:]
    return out


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of raw RGB(A) bytes) of an 8-bit truecolour PNG: enough to tell blank from drawn."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and colour in (2, 6), f"unsupported PNG depth {depth} colour type {colour}"
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        filt = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if filt == 1:
                line[x] = (line[x] + a) & 0xFF
            elif filt == 2:
                line[x] = (line[x] + b) & 0xFF
            elif filt == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows


class PlotFinder(HTMLParser):
    """For each element with an id starting 'plot-': how many <svg class="main-svg"> it contains."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str | None] = []
        self.svgs: dict[str, int] = {}
        self.traces: dict[str, int] = {}

    _VOID = frozenset({"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        ident = attr.get("id") or ""
        owner = ident if ident.startswith("plot-") else None
        if owner:
            self.svgs.setdefault(owner, 0)
            self.traces.setdefault(owner, 0)
        current = next((o for o in reversed(self.stack) if o), None)
        classes = (attr.get("class") or "").split()
        if current and tag == "svg" and "main-svg" in classes:
            self.svgs[current] += 1
        if current and tag == "g" and ("trace" in classes or "point" in classes):
            self.traces[current] += 1
        if tag not in self._VOID:
            self.stack.append(owner)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self._VOID and self.stack:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag not in self._VOID and self.stack:
            self.stack.pop()


def plots_in(dom: str) -> PlotFinder:
    finder = PlotFinder()
    finder.feed(dom)
    return finder
