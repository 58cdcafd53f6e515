"""Soak with RSS sampling (issue 10.4): memory must come back near its baseline.

Phases: 64-byte messages on a few connections, 1 MiB messages, then fuzz-like junk
peers (random frames, cut frames, oversized lengths, noise), then idle. The server's
RSS is sampled throughout; the figures are its start, peak and end.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from securemsg_lab.core import loadgen
from securemsg_lab.core.loadgen import Load

from .stress_support import (
    ServerUnderTest,
    connect,
    junk_bytes,
    real_client_round,
    scaled,
)

MIB = 1024


class RssSampler:
    """The server's RSS every 0.2 s, in KiB."""

    def __init__(self, server: ServerUnderTest) -> None:
        self.server = server
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.samples.append(self.server.rss_kib())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def junk_peer(port: int) -> None:
    try:
        with connect(port, timeout=10.0) as sock:
            sock.sendall(junk_bytes())
    except OSError:
        pass  # the server may close first (a length over the limit): that is the point


@pytest.mark.timeout(900)
def test_soak_rss(implementation, built, figures, tmp_path: Path) -> None:
    server = ServerUnderTest(implementation, (), tmp_path)
    sampler = RssSampler(server)
    phases: dict[str, dict] = {}
    try:
        start = server.rss_kib()  # idle from its Listening line on
        seconds, connections = scaled("soak_seconds"), scaled("soak_connections")
        small = loadgen.run(server.port, Load(connections=connections, size=64,
                                              seconds=seconds))
        server.truncate()
        phases["64B"] = {"round_trips": small.round_trips, "errors": small.errors,
                         "rss_kib": server.rss_kib()}
        large = loadgen.run(server.port, Load(connections=4, size=1 << 20, seconds=seconds / 2,
                                              messages=25))
        server.truncate()
        phases["1MiB"] = {"round_trips": large.round_trips, "errors": large.errors,
                          "rss_kib": server.rss_kib()}
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(junk_peer, [server.port] * scaled("junk_peers")))
        server.truncate()
        phases["junk"] = {"peers": scaled("junk_peers"), "rss_kib": server.rss_kib(),
                          "busy_after_s": round(server.wait_idle(), 2)}  # logging the frames
        server.truncate()
        end = server.rss_kib()
        served_after = real_client_round(server.port)
    finally:
        sampler.stop()
        server.stop()
    peak = max([start, end, *sampler.samples])
    figures["rss_kib"] = {"start": start, "peak": peak, "end": end}
    figures["phases"] = phases
    figures["real_client_after_s"] = round(served_after, 4)
    assert small.errors == 0 and large.errors == 0
    assert end - start < 64 * MIB, f"RSS {start} KiB at start, {end} KiB idle at the end"
