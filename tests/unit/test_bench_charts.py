"""The benchmark charts (securemsg_lab.benchmark.charts): drawn from a small synthetic results file,
and a malformed file refused with a clear message. No measuring: that is bench's job."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from securemsg_lab.benchmark import charts

CONNS = (1, 4, 16)
SIZES = (64, 1024, 65536, 1 << 20)
SERVERS = {"c": 20_000.0, "python": 8_000.0}


def synthetic_run(server: str, cipher: str, conns: int, size: int) -> dict[str, Any]:
    rate = SERVERS[server] * (0.7 if cipher == "noise" else 1.0) * conns ** 0.5
    rate /= 1 + size / 20_000
    p50 = 1e6 / rate * conns
    return {"mode": "roundtrip", "server": server, "cipher": cipher, "connections": conns,
            "size": size, "round_trips": int(rate), "rt_per_s": rate,
            "mb_per_s": rate * size / 1e6, "p50_us": p50, "p90_us": p50 * 1.5,
            "p99_us": p50 * 3, "p999_us": p50 * 6, "max_us": p50 * 10, "errors": 0}


def synthetic_doc() -> dict[str, Any]:
    runs = [synthetic_run(s, c, n, z) for s in SERVERS for c in ("xor", "noise")
            for n in CONNS for z in SIZES]
    split = []
    for server in SERVERS:
        split.append({**synthetic_run(server, "xor", 1, 64), "split_writes": False})
        split.append({**synthetic_run(server, "xor", 1, 64), "split_writes": True,
                      "rt_per_s": 23.5, "p50_us": 40_500.0, "p90_us": 41_000.0,
                      "p99_us": 44_000.0, "p999_us": 48_000.0})
    paired = {"any": {s: {"xor": [v, v * 1.02, v * 0.98], "noise": [v * 0.7] * 3}
                      for s, v in SERVERS.items()}}
    return {"config": {"seconds_per_run": 1.5}, "runs": runs, "split_writes": split,
            "paired_64b_rt_per_s": paired,
            "refserver_rt_per_s": {"any": {s: [21_000.0, 22_000.0, 21_500.0] for s in SERVERS}},
            "loopback_reference_rt_per_s": {"any": [30_000.0, 31_000.0, 29_000.0]},
            "load_average": [2.5, 3.1], "cpus": 2, "measured_at": "2026-12-02T13:00:00Z"}


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


def test_render_writes_every_chart_as_a_sane_png(tmp_path: Path) -> None:
    results = tmp_path / "bench.json"
    results.write_text(json.dumps(synthetic_doc()))
    written = charts.render_file(results, tmp_path / "out")
    assert [p.name for p in written] == [name for name, _ in charts.CHARTS]
    for path in written:
        width, height = png_size(path)
        assert 800 <= width <= 2500 and 400 <= height <= 1500, (path.name, width, height)
        assert path.stat().st_size > 20_000, f"{path.name} looks empty"


def test_cli_redraws_beside_the_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    results = tmp_path / "bench.json"
    results.write_text(json.dumps(synthetic_doc()))
    assert charts.main([str(results)]) == 0
    assert all((tmp_path / name).is_file() for name, _ in charts.CHARTS)
    assert "wrote" in capsys.readouterr().out


def test_charts_without_optional_sections(tmp_path: Path) -> None:
    """An older or partial results file (no percentiles past p99, no yardstick) still draws."""
    doc = synthetic_doc()
    for key in ("split_writes", "paired_64b_rt_per_s", "refserver_rt_per_s",
                "loopback_reference_rt_per_s", "load_average"):
        del doc[key]
    doc["runs"] = [{k: v for k, v in r.items() if k not in ("p90_us", "p999_us")}
                   for r in doc["runs"] if r["connections"] == 1]
    assert len(charts.render(charts.validate(doc, "partial"), tmp_path)) == len(charts.CHARTS)


def broken(change: str) -> str:
    doc = synthetic_doc()
    if change == "truncated":
        return json.dumps(doc)[:200]
    if change == "list":
        return json.dumps([doc])
    if change == "no runs":
        doc["runs"] = []
    elif change == "size as text":
        doc["runs"][3]["size"] = "64 B"
    elif change == "errors as bool":
        doc["runs"][0]["errors"] = False
    elif change == "nested figures":
        doc["refserver_rt_per_s"] = {"any": {"c": ["fast"]}}
    return json.dumps(doc)


@pytest.mark.parametrize(("change", "message"), [
    ("truncated", "not JSON: "),
    ("list", "expected a JSON object"),
    ("no runs", "'runs' must be a non-empty list"),
    ("size as text", "runs[3] has no valid 'size' (got '64 B')"),
    ("errors as bool", "runs[0] has no valid 'errors'"),
    ("nested figures", "'refserver_rt_per_s' must end in lists of numbers"),
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

