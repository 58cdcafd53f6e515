"""Reconnecting stallers (issue 16, point 5; PROTOCOL.md section 9, fair eviction).

With --max-clients 64, 64 peers (bench/hostile --mode restall) each send 2 bytes of a
frame header and connect again as soon as the server cuts them, so the server is
always full and none of them is ever quiet. Real clients (bench/loadgen, one after
another) must still get through: a peer stuck in a frame at 2 bytes/s is below
--min-rate and evictable. The figures: how many real clients were served in how
long, their latency, the eviction and refusal lines.
"""

from __future__ import annotations

import pytest

from .stress_support import Hostile, real_clients, scaled, wait_until

MAX_CLIENTS = 64


@pytest.mark.timeout(600)
def test_reconnecting_stallers(start_server, built, figures) -> None:
    clients, seconds = scaled("restall_clients"), scaled("restall_seconds")
    server = start_server("--max-clients", str(MAX_CLIENTS))
    fds_start = server.open_fds()
    hostile = Hostile(server.port, "restall", MAX_CLIENTS, seconds + 5, "--header-bytes", "2")
    try:
        connected = hostile.wait_connected()
        full = wait_until(lambda: server.open_fds() - fds_start >= MAX_CLIENTS, 30)
        real = real_clients(server.port, seconds, clients=clients)
    finally:
        load = hostile.result(early=True)
    lines = server.lines()
    figures["max_clients"] = MAX_CLIENTS
    figures["command"] = hostile.command
    figures["real_clients_wanted"] = clients
    figures["real_clients"] = real
    figures["hostile"] = load
    figures["evicted_in_frame_lines"] = sum("in a frame, server full" in line for line in lines)
    figures["evicted_idle_lines"] = sum(" idle " in line and "Evicted" in line for line in lines)
    figures["refused_lines"] = server.count_errors("Client refused")
    assert connected == MAX_CLIENTS and full, "the stallers never filled the server"
    assert real["errors"] == 0 and real["round_trips"] == clients, (
        f"{real['round_trips']} of {clients} real clients served in {seconds:.0f} s: "
        f"{real['first_error']}")
    assert real["p99_ms"] <= scaled("real_p99_ms"), real
