"""Thousands of slow-but-legal senders (issue 16, point 1).

N peers (bench/hostile) each announce a 1 MiB frame and send it at 64 KiB/s, one
frame after another, while real clients (bench/loadgen) come one after another. The
server must keep serving them, its deadlines must fire although every peer always
has bytes ready, and once the peers are gone its connections and threads must end
and SIGTERM must stop it on time.

Full scale: the issue's load (2,000 peers, default options, 40 s: past the 26 s a
1 MiB frame is allowed, so each peer has had a frame ACKed or was cut with a line).
Short scale: a few hundred peers, the server with --frame-timeout 1 --min-rate
262144 (5 s for 1 MiB, which 64 KiB/s cannot meet): every peer must be cut, each
with its line, and real clients are served meanwhile.
"""

from __future__ import annotations

import time

import pytest

from .stress_support import (
    Hostile,
    real_client_round,
    real_clients,
    scale_name,
    scaled,
    wait_until,
)

CUT_LINES = ("Frame timeout for ", "paused by the memory budget")
DRAIN_TIMEOUT = 5  # the default
# Threads a server may start on demand and keep (e.g. one watching paused sockets):
# not one per peer.
SERVICE_THREADS = 2
RATE = 65536  # bytes/s per peer: the default --min-rate
# Short scale: an allowance of 1 + 1 MiB / 256 KiB/s = 5 s, which 64 KiB/s cannot meet.
SHORT_MIN_RATE = 256 * 1024


@pytest.mark.timeout(900)
def test_min_rate_senders(start_server, built, figures) -> None:
    peers, seconds = scaled("minrate_peers"), scaled("minrate_seconds")
    short = scale_name() == "short"
    options = ("--frame-timeout", "1", "--min-rate", str(SHORT_MIN_RATE)) if short else ()
    server = start_server(*options)
    fds_start = server.open_fds()
    real_client_round(server.port)  # whatever a server starts on first use is up
    wait_until(lambda: server.open_fds() <= fds_start, 5)
    threads_start = server.threads()
    hostile = Hostile(server.port, "trickle", peers, seconds, "--rate", str(RATE))
    connected = hostile.wait_connected()
    accepted = wait_until(lambda: server.open_fds() - fds_start
                          + server.count_errors(*CUT_LINES) >= connected, 60)
    real_result = real_clients(server.port,
                               seconds - (time.monotonic() - hostile.proc.started) - 1)
    load = hostile.result()
    closed = wait_until(lambda: server.open_fds() <= fds_start, 15)
    threads_ended = wait_until(lambda: server.threads() <= threads_start + SERVICE_THREADS, 15)
    cut_lines = server.count_errors(*CUT_LINES)
    threads_after, fds_after = server.threads(), server.open_fds() - fds_start
    exit_code, exit_s = server.terminate(timeout=30)
    figures["peers"] = peers
    figures["seconds"] = seconds
    figures["server_options"] = list(options)
    figures["command"] = hostile.command
    figures["real_clients"] = real_result
    figures["hostile"] = load
    figures["acks"] = load["acks"]
    figures["frame_timeout_lines"] = server.count_errors(CUT_LINES[0])
    figures["cut_paused_lines"] = server.count_errors(CUT_LINES[1])
    figures["threads"] = {"start": threads_start, "after_peers_left": threads_after}
    figures["connections_left"] = fds_after
    figures["exit"] = {"code": exit_code, "seconds": round(exit_s, 3)}
    assert connected == peers and accepted, f"{connected} of {peers} peers in"
    assert real_result["errors"] == 0 and real_result["round_trips"] > 0, real_result
    assert real_result["p99_ms"] <= scaled("real_p99_ms"), real_result
    cuts = load["cut_eof"] + load["cut_reset"]
    if short:  # every peer is cut
        assert cuts == peers and cut_lines == peers, (
            f"{peers} peers: {cuts} cut, {cut_lines} cut lines (each must be cut, with its line)")
    else:  # 40 s > 26 s: each peer has had a frame ACKed or was cut, with its line
        assert cut_lines >= cuts and load["acks"] + cut_lines >= peers, (
            f"{peers} peers: {cuts} cut, {cut_lines} cut lines, {load['acks']} frames ACKed")
    assert closed and threads_ended, (
        f"{fds_after} connections and {threads_after - threads_start} threads "
        "left 15 s after the peers")
    assert exit_code == 0 and exit_s <= DRAIN_TIMEOUT + 1, (exit_code, exit_s)
