"""The benchmark tools work: every ACK checked, every figure present, --compare runs both
builds in one run (no timing asserted: timings on a shared machine are noisy; the
targets are securemsg-bench's business, not the tests').
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from securemsg_lab.benchmark import report, work
from securemsg_lab.core import loadgen
from securemsg_lab.core.process import Process, ProcResult, run
from securemsg_lab.core.timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    for directory in ("c", "bench"):
        build = run(["make", "-s", "-C", str(ROOT / directory)], timeout=scaled(240))
        assert build.exit_code == 0, build.stderr.decode()


def bench(*args: str) -> ProcResult:
    return run([sys.executable, "-m", "securemsg_lab.benchmark", "--no-build", *args],
               timeout=scaled(240))


def test_loadgen_refuses_a_host_off_loopback() -> None:
    done = run([str(BENCH / "loadgen"), "--duration", "0.2", "192.0.2.1", "5000"],
               timeout=scaled(10))
    assert done.exit_code == 2, done.stderr
    assert b"loopback" in done.stderr


def test_a_short_bench_of_the_c_server_checks_every_ack(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{report.README_BEGIN}\nold\n{report.README_END}\n\nafter\n")
    charts = tmp_path / "charts"
    done = bench("--quick", "--rounds", "1", "--seconds", "0.2", "--servers", "c",
                 "--charts", str(charts), "--readme", str(readme))
    assert done.exit_code == 0, done.stderr.decode()[-2000:]
    doc = json.loads((charts / "bench.json").read_text())
    assert doc["skipped"] == []
    assert {(r["scenario"], r["server"], r["cipher"]) for r in doc["rounds"]} == {
        (s.key, server, cipher) for s in work.SCENARIOS
        for server, cipher in (("refserver", "xor"), ("c", "xor"), ("c", "noise"))}
    assert {(r["server"], r["cipher"], r["connections"], r["size"]) for r in doc["runs"]} == {
        (server, cipher, conns, size) for server, cipher in
        (("refserver", "xor"), ("c", "xor"), ("c", "noise")) for conns in (1, 16)
        for size in (64, 1 << 20)}
    runs = doc["rounds"] + doc["runs"] + doc["handshakes"]
    assert all(r["errors"] == 0 and r["round_trips"] > 0 for r in runs), runs
    assert all(r["p50_us"] <= r["p90_us"] <= r["p99_us"] <= r["p999_us"] <= r["max_us"]
               for r in runs), runs
    assert [h["mode"] for h in doc["handshakes"]] == ["handshakes", "handshakes"]
    # every target of the C entry measured, none of another implementation
    assert doc["targets"] and all(t["server"] == "c" and t["verdict"] != "SKIP"
                                  for t in doc["targets"])
    for name in ("serverbound.png", "throughput.png", "latency.png"):
        assert (charts / name).read_bytes().startswith(b"\x89PNG"), name
    assert readme.read_text() == f"# x\n\n{report.readme_section(doc)}\n\nafter\n"
    text = done.stdout.decode()
    assert "1 conn x 64 B, one CPU" in text and "Targets (this tree" in text


def test_compare_runs_both_builds_interleaved(tmp_path: Path) -> None:
    worktrees = run(["git", "-C", str(ROOT), "worktree", "list"]).stdout
    out = tmp_path / "compare.json"
    done = bench("--compare", "HEAD", "--servers", "python", "--ciphers", "xor",
                 "--rounds", "2", "--seconds", "0.2", "--json", str(out))
    assert done.exit_code == 0, done.stderr.decode()[-2000:]
    doc = json.loads(out.read_text())
    assert [b["key"] for b in doc["builds"]] == [work.BASE, work.THIS]
    assert doc["builds"][0]["label"] == "HEAD" and doc["runs"] == []
    seen = {(r["round"], r["scenario"], r["build"], r["server"]) for r in doc["rounds"]}
    assert seen == {(n, s.key, b, server) for n in (0, 1) for s in work.SCENARIOS
                    for b, server in ((work.THIS, "refserver"), (work.BASE, "python"),
                                      (work.THIS, "python"))}
    assert all(r["errors"] == 0 for r in doc["rounds"])
    header = next(line for line in done.stdout.decode().splitlines()
                  if line.startswith("work "))
    assert "HEAD" in header and "this tree" in header and "change" in header
    # the temporary worktree is gone
    assert run(["git", "-C", str(ROOT), "worktree", "list"]).stdout == worktrees


def test_compare_with_an_unknown_revision_fails_clearly() -> None:
    done = bench("--compare", "no-such-revision-here", "--servers", "python")
    assert done.exit_code == 1
    assert done.stderr.decode().startswith("[ERROR] git rev-parse"), done.stderr


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
