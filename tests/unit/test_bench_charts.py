"""The benchmark's arithmetic, tables and charts (securemsg_lab.benchmark), on small
synthetic results with known answers; README's figures equal to the committed bench.json.
No measuring: tests/local/test_bench.py runs the tool."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from securemsg_lab.benchmark import charts, report, work
from securemsg_lab.benchmark.work import BASE, THIS, Series

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_SIZES = {s.key: (s.connections, s.size) for s in work.SCENARIOS}
#: rt/s of each round, per (build, server, cipher) and scenario: the best is the max
RATES = {
    (THIS, "refserver", "xor"): {"one-cpu": [50_000, 60_000], "16-conns": [100_000, 80_000],
                                 "1-mib": [1000, 1500], "loopback": [15_000, 16_000]},
    (THIS, "c", "xor"): {"one-cpu": [57_000, 55_000], "16-conns": [90_000, 99_000],
                         "1-mib": [3000, 2500], "loopback": [15_500, 15_000]},
    (THIS, "c", "noise"): {"one-cpu": [54_000, 50_000], "16-conns": [80_000, 85_000],
                           "1-mib": [500, 550], "loopback": [15_000, 14_000]},
    (BASE, "c", "xor"): {"one-cpu": [60_000, 30_000], "16-conns": [50_000, 45_000],
                         "1-mib": [600, 500], "loopback": [15_000, 15_000]},
}


def loadgen_result(server: str, cipher: str, conns: int, size: int, rate: float,
                   errors: int = 0) -> dict[str, Any]:
    p50 = 1e6 / rate * conns
    return {"mode": "roundtrip", "server": server, "cipher": cipher, "connections": conns,
            "size": size, "round_trips": int(rate), "rt_per_s": float(rate),
            "mb_per_s": rate * size / 1e6, "p50_us": p50, "p90_us": p50 * 1.5,
            "p99_us": p50 * 3, "p999_us": p50 * 6, "max_us": p50 * 10, "errors": errors,
            "first_error": ""}


def synthetic_doc(builds: tuple[str, ...] = (THIS,)) -> dict[str, Any]:
    rounds = []
    for (build, server, cipher), by_scenario in RATES.items():
        if build not in builds:
            continue
        for scenario, rates in by_scenario.items():
            conns, size = SCENARIO_SIZES[scenario]
            for number, rate in enumerate(rates):
                rounds.append({"round": number, "scenario": scenario, "build": build,
                               **loadgen_result(server, cipher, conns, size, rate)})
    # a failed run is never a figure, however fast
    rounds.append({"round": 2, "scenario": "one-cpu", "build": THIS,
                   **loadgen_result("c", "xor", 1, 64, 1e9, errors=1)})
    sweep = [{"build": THIS, **loadgen_result(s, c, n, z, 20_000 / (1 + z / 20_000) * n ** 0.5)}
             for s, c in (("refserver", "xor"), ("c", "xor"), ("c", "noise"))
             for n in (1, 4, 16) for z in (64, 1024, 65536, 1 << 20)]
    specs = work.parse_targets("c", {"one-cpu": 0.95, "16-conns": 0.95, "1-mib xor": 2.0,
                                     "1-mib noise/xor": 0.4})
    names = {THIS: "this tree (abc1234)", BASE: "7f1f3e6"}
    return {"version": work.DOC_VERSION, "measured_at": "2026-12-07T13:00:00Z", "cpus": 2,
            "load_average": [1.0, 2.5], "config": {"rounds": 2, "seconds_per_run": 1.0},
            "builds": [{"key": b, "label": names[b]} for b in builds], "rounds": rounds,
            "runs": sweep, "handshakes": [], "skipped": [],
            "targets": work.evaluate(rounds, specs, ("xor", "noise"))}


def test_best_is_the_best_usable_round_and_shares_divide_by_refservers_best() -> None:
    runs = synthetic_doc()["rounds"]
    assert work.best(runs, "one-cpu", Series(THIS, "c", "xor")) == 57_000  # not the failed 1e9
    assert work.best(runs, "one-cpu", work.YARDSTICK) == 60_000
    assert work.share(runs, "one-cpu", Series(THIS, "c", "xor")) == pytest.approx(0.95)
    assert work.share(runs, "1-mib", Series(THIS, "c", "xor")) == pytest.approx(2.0)
    assert work.best(runs, "one-cpu", Series(THIS, "python", "xor")) is None


def test_targets_from_a_registry_table() -> None:
    verdicts = {t["name"]: (t["verdict"], t["measured"]) for t in synthetic_doc()["targets"]}
    assert verdicts == {
        "c xor / refserver, 1 conn x 64 B, one CPU": ("PASS", pytest.approx(0.95)),
        "c noise / refserver, 1 conn x 64 B, one CPU": ("FAIL", pytest.approx(0.9)),
        "c xor / refserver, 16 conns x 64 B": ("PASS", pytest.approx(0.99)),
        "c noise / refserver, 16 conns x 64 B": ("FAIL", pytest.approx(0.85)),
        "c xor / refserver, 4 conns x 1 MiB": ("PASS", pytest.approx(2.0)),
        "c noise / c xor, 4 conns x 1 MiB": ("FAIL", pytest.approx(550 / 3000)),
    }


@pytest.mark.parametrize(("table", "message"), [
    ({"loopback": 1.0}, "no such scenario"),
    ({"two-cpus": 1.0}, "no such scenario"),
    ({"one-cpu aes": 1.0}, "xor, noise or noise/xor"),
    ({"one-cpu": "fast"}, "positive number"),
    ({"one-cpu": True}, "positive number"),
])
def test_a_bad_target_table_is_refused(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        work.parse_targets("c", table)


def test_the_builtin_entries_targets_parse() -> None:
    from securemsg_lab.core import registry

    for impl in registry.default():
        work.parse_targets(impl.name, impl.extra.get("bench", {}).get("targets", {}))


def test_compare_rows_give_both_shares_and_the_change() -> None:
    doc = synthetic_doc((BASE, THIS))
    row = next(r for r in work.rows(doc) if (r.scenario.key, r.server, r.cipher) ==
               ("16-conns", "c", "xor"))
    assert row.shares == {BASE: pytest.approx(0.5), THIS: pytest.approx(0.99)}
    assert row.change == pytest.approx(0.98)
    table = report.scenario_table(doc)
    assert table[0][4:9] == ["7f1f3e6", "share", "this tree (abc1234)", "share", "change"]
    line = next(cells for cells in table if cells[:3] == ["16 conns x 64 B", "c", "xor"])
    assert line[3:] == ["100,000 rt/s", "50,000 rt/s", "0.50x", "99,000 rt/s", "0.99x", "+98%",
                        ">= 0.95x met"]
    mib = next(cells for cells in table if cells[:3] == ["4 conns x 1 MiB", "c", "xor"])
    assert mib[3] == "1,573 MB/s" and mib[-1] == ">= 2x met"  # 1500 rt/s x 1 MiB


def test_the_readme_section_says_which_targets_fail() -> None:
    section = report.readme_section(synthetic_doc())
    assert section.startswith(report.README_BEGIN) and section.endswith(report.README_END)
    assert "3 of 6 targets are not met: c noise / refserver, 1 conn x 64 B, one CPU 0.90x" \
        in section
    assert "| 1 conn x 64 B, across CPUs (loopback yardstick) | c | xor | 16,000 rt/s | " \
        "15,500 rt/s | 0.97x | none (yardstick) |" in section


def test_readme_figures_equal_the_committed_bench_json() -> None:
    doc = charts.load_results(ROOT / "docs" / "bench" / charts.RESULTS_NAME)
    readme = (ROOT / "README.md").read_text()
    assert report.readme_section(doc) in readme, \
        "README's benchmark figures differ from docs/bench/bench.json: run make bench"


def test_log_ticks_step_1_2_5_up_to_the_top() -> None:
    assert charts.steps(650, 1.5) == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    assert charts.steps(3000, 30) == [20, 50, 100, 200, 500, 1000, 2000, 5000]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the signature and its CRC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    (crc,) = struct.unpack(">I", data[29:33])
    assert crc == zlib.crc32(data[12:29]), f"{path}: corrupt IHDR"
    assert data.endswith(b"IEND\xaeB`\x82"), f"{path} is truncated"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("builds", [(THIS,), (BASE, THIS)])
def test_render_writes_every_chart_as_a_sane_png(tmp_path: Path, builds: tuple[str, ...]
                                                 ) -> None:
    results = tmp_path / "bench.json"
    results.write_text(json.dumps(synthetic_doc(builds)))
    written = charts.render_file(results, tmp_path / "out")
    assert [p.name for p in written] == [name for name, _ in charts.CHARTS]
    for path in written:
        width, height = png_size(path)
        assert 800 <= width <= 2500 and 400 <= height <= 1700, (path.name, width, height)
        assert path.stat().st_size > 20_000, f"{path.name} looks empty"


def test_cli_redraws_beside_the_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    results = tmp_path / "bench.json"
    results.write_text(json.dumps(synthetic_doc()))
    assert charts.main([str(results)]) == 0
    assert all((tmp_path / name).is_file() for name, _ in charts.CHARTS)
    assert "wrote" in capsys.readouterr().out


def test_charts_without_a_sweep(tmp_path: Path) -> None:
    """A --no-sweep run (rounds only) still draws every chart."""
    doc = synthetic_doc()
    doc["runs"] = []
    written = charts.render(charts.validate(doc, "partial"), tmp_path)
    assert [path.name for path in written] == [name for name, _ in charts.CHARTS]


def broken(change: str) -> str:
    doc = synthetic_doc()
    if change == "truncated":
        return json.dumps(doc)[:200]
    if change == "list":
        return json.dumps([doc])
    if change == "old":
        del doc["version"]
    elif change == "no rounds":
        doc["rounds"] = []
    elif change == "size as text":
        doc["rounds"][3]["size"] = "64 B"
    elif change == "errors as bool":
        doc["runs"][0]["errors"] = False
    return json.dumps(doc)


@pytest.mark.parametrize(("change", "message"), [
    ("truncated", "not JSON: "),
    ("list", "expected a JSON object"),
    ("old", "not a version 2 results file"),
    ("no rounds", "'rounds' must be a non-empty list"),
    ("size as text", "rounds[3] has no valid 'size' (got '64 B')"),
    ("errors as bool", "runs[0] has no valid 'errors'"),
])
def test_a_malformed_results_file_is_refused_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str, message: str
) -> None:
    results = tmp_path / "bench.json"
    results.write_text(broken(change))
    with pytest.raises(charts.ChartError) as caught:
        charts.load_results(results)
    assert message in str(caught.value) and str(results) in str(caught.value)
    assert charts.main([str(results)]) == 1
    assert f"[ERROR] {results}: " in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))


def test_a_missing_results_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(charts.ChartError, match="cannot read"):
        charts.load_results(tmp_path / "nothing.json")


def test_the_text_report_lists_failed_runs_and_the_targets(capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    report.print_all(synthetic_doc())
    out = capsys.readouterr().out
    assert "Runs with errors (1; never a figure)" in out
    assert "this/c/xor 1 conns x 64 B: 1 errors" in out
    assert "FAIL  c noise / c xor, 4 conns x 1 MiB: 0.18x (target >= 0.4x)" in out
    assert "load average (1 min) 1.0 -> 2.5 on 2 CPUs" in out
