"""Headless Chromium (Debian's `chromium`, installed by `make setup`) for the report tests:
load a page from file:// through a proxy that counts connections, and read its DOM.

With `--proxy-server` and `<-loopback>` every request the browser makes, even to
127.0.0.1, goes to `Proxy`, which keeps each request's first line: a page that fetches
anything shows up there. The browser's own calls home (component updates, accounts)
come whatever the page, so they are told apart by host (`BROWSER_HOSTS`).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from securemsg_lab.core.process import run
from securemsg_lab.core.timeouts import scaled

from ..support import needs


def chromium() -> str:
    """Debian's chromium (make setup installs it): skipped without, failed with
    REQUIRE_DOCKER=1 (tests/support/needs.py)."""
    return needs.tool("chromium", "chromium (make setup installs it)")

QUIET = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars",
         "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter",
         "--proxy-bypass-list=<-loopback>"]
BROWSER_HOSTS = ("update.googleapis.com", "accounts.google.com", "clients2.google.com",
                 "optimizationguide-pa.googleapis.com", ".gvt1.com")


class Proxy:
    """A loopback listener that notes each request's first line, and answers none."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    first = conn.recv(1024).split(b"\r\n", 1)[0]
                except OSError:
                    first = b""  # a preconnection that never sent a request
            self.requests.append(first.decode(errors="replace"))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@dataclass
class Dom(HTMLParser):
    """The attributes of every element, by tag."""

    elements: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def having(self, css_class: str) -> list[dict[str, str]]:
        return [a for _, a in self.elements if css_class in a.get("class", "").split()]

    def body(self) -> dict[str, str]:
        return next(a for tag, a in self.elements if tag == "body")


def page_requests(requests: list[str]) -> list[str]:
    """The requests that are not the browser's own calls home (nor preconnections,
    which send nothing)."""
    def host(line: str) -> str:
        target = line.split(" ")[1] if " " in line else line
        return target.split("://")[-1].split("/")[0].split(":")[0]
    return [line for line in requests if line and not host(line).endswith(BROWSER_HOSTS)]


def browse(page: Path, profile: Path, *extra: str) -> tuple[Dom, list[str]]:
    """The page's DOM after its scripts ran, and the requests it made (page_requests)."""
    browser = chromium()
    proxy = Proxy()
    try:
        done = run([browser, *QUIET, f"--proxy-server=http://127.0.0.1:{proxy.port}",
                    f"--user-data-dir={profile}", "--virtual-time-budget=3000", *extra,
                    "--dump-dom", page.resolve().as_uri()], role="chromium", timeout=scaled(90))
    finally:
        proxy.close()
    assert done.exit_code == 0, done.stderr.decode(errors="replace")[-2000:]
    dom = Dom()
    dom.feed(done.stdout.decode())
    return dom, page_requests(proxy.requests)


def screenshot(url: str, out: Path, profile: Path, size: str = "1200,2000") -> Path:
    done = run([chromium(), *QUIET, f"--user-data-dir={profile}", f"--window-size={size}",
                f"--screenshot={out}", url], role="chromium", timeout=scaled(90))
    assert done.exit_code == 0 and out.exists(), done.stderr.decode(errors="replace")[-2000:]
    return out
