"""The benchmark tools work: every ACK checked, every figure present (no timing asserted).

Performance targets live in bench/bench.py, not here: timings on a shared machine are
noisy. These tests only check that the tools measure what they say, on loopback, in
short bounded runs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from securemsg_lab.core import loadgen
from securemsg_lab.core.process import Process, run
from securemsg_lab.core.timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    for directory in ("c", "bench"):
        build = run(["make", "-s", "-C", str(ROOT / directory)], timeout=scaled(240))
        assert build.exit_code == 0, build.stderr.decode()


def json_line(argv: list[str]) -> dict[str, object]:
    done = run(argv, timeout=scaled(60))
    assert done.exit_code == 0, done.stderr.decode()
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def test_rttfloor_reports_round_trips() -> None:
    result = json_line([str(BENCH / "rttfloor"), "--duration", "0.3"])
    assert result["mode"] == "rttfloor"
    ack = b"ACK: Received 64 bytes"
    assert (result["request_bytes"], result["reply_bytes"]) == (4 + 64, 4 + len(ack))
    assert int(result["round_trips"]) > 0
    assert float(result["rt_per_s"]) > 0


@pytest.mark.parametrize("argv", [["--duration", "0"], ["--duration", "61"], ["x"]])
def test_rttfloor_rejects_bad_usage(argv: list[str]) -> None:
    done = run([str(BENCH / "rttfloor"), *argv], timeout=scaled(10))
    assert done.exit_code == 2
    assert done.stdout == b""


def test_loadgen_refuses_a_host_off_loopback() -> None:
    done = run([str(BENCH / "loadgen"), "--duration", "0.2", "192.0.2.1", "5000"],
               timeout=scaled(10))
    assert done.exit_code == 2, done.stderr
    assert b"loopback" in done.stderr


def test_quick_bench_of_the_c_server_checks_every_ack(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = run(
        [sys.executable, "-m", "securemsg_lab.benchmark", "--quick", "--no-build", "--servers", "c",
         "--seconds", "0.2", "--json", str(out), "--charts", str(tmp_path / "charts")],
        timeout=scaled(240),
    )
    text = done.stdout.decode()
    assert done.exit_code == 0, done.stderr.decode()
    doc = json.loads(out.read_text())
    runs = doc["runs"] + doc["handshakes"] + doc["split_writes"] + doc["binary_payload"]
    assert {(r["cipher"], r["connections"], r["size"]) for r in doc["runs"]} == {
        (cipher, conns, size) for cipher in ("xor", "noise") for conns in (1, 16)
        for size in (64, 1 << 20)
    }
    assert all(r["errors"] == 0 and r["round_trips"] > 0 for r in runs), runs
    assert all(r["p50_us"] <= r["p90_us"] <= r["p99_us"] <= r["p999_us"] <= r["max_us"]
               for r in runs), runs
    # --charts: the same results beside the PNGs drawn from them
    charts = tmp_path / "charts"
    assert json.loads((charts / "bench.json").read_text())["runs"] == doc["runs"]
    for name in ("roundtrips.png", "throughput.png", "latency.png"):
        assert (charts / name).read_bytes().startswith(b"\x89PNG"), name
    assert doc["skipped"] == []
    placements = ["any", "one-cpu"] if (os.cpu_count() or 1) > 1 else ["any"]
    assert list(doc["loopback_reference_rt_per_s"]) == placements
    assert all(len(values) == 3 for values in doc["loopback_reference_rt_per_s"].values())
    assert list(doc["paired_64b_rt_per_s"]) == placements
    assert all(t["verdict"] != "SKIP" for t in doc["targets"] if "Python server" not in t["name"])
    assert "bare loopback reference median" in text
    assert "as a share of the reference: c xor" in text
    # the yardstick: bench/refserver alternated with the C server's 64 B runs
    assert all(len(doc["refserver_rt_per_s"][p]["c"]) == 3 for p in placements)
    assert "refserver (beside c) median" in text
    shares = [t for t in doc["targets"] if t["name"].startswith("C server xor / refserver")]
    assert len(shares) == len(placements) and all(t["measured"] > 0 for t in shares)
    assert "Targets (issues 2 and 5" in text


def test_loadgen_wrapper_runs_a_load_and_reports_usage_errors() -> None:
    server = Process([str(BENCH / "refserver"), "0"], role="refserver")
    try:
        port = server.wait_listening()
        result = loadgen.run(port, loadgen.Load(connections=2, size=1000, messages=50,
                                                seconds=5))
        assert result.ok and result.round_trips == 100, result
        assert result.raw["connections"] == 2 and result.raw["size"] == 1000
        assert result.p50_us <= result.p99_us <= result.max_us
        with pytest.raises(loadgen.LoadgenError, match="--connections"):
            loadgen.run(port, loadgen.Load(connections=0))
    finally:
        server.stop()


def test_loadgen_help_describes_split_writes_neutrally() -> None:
    done = run([str(BENCH / "loadgen"), "--help"], timeout=scaled(10))
    assert done.exit_code == 0
    line = next(ln for ln in done.out_lines if "--split-writes" in ln)
    assert "two writes" in line and "bug" not in line and "seed" not in line, line
