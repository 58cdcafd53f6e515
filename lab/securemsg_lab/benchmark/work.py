"""What the benchmark measures and how its figures follow from the runs: pure, no I/O.

A run is one loadgen result (a dict, as loadgen prints it) tagged with its round, its
scenario and its series (which build, which server, which cipher). Every figure is the
best of the rounds, and every ratio is a server's best over `bench/refserver`'s best on
the same scenario in the same run: the runs were interleaved, so both saw the same
machine. The results document (bench.json) holds the runs; everything else -- tables,
targets, charts, README's section -- is computed from it here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MiB = 1 << 20
#: the yardstick's name among the servers (bench/refserver; not a registry implementation)
REFERENCE = "refserver"
#: the builds of a run: this checkout, and with --compare REV the other revision
THIS, BASE = "this", "base"
DOC_VERSION = 2

Doc = dict[str, Any]
Run = dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    connections: int
    size: int
    one_cpu: bool = False  # server, refserver and load client all pinned to the first CPU
    yardstick: bool = False  # the loopback's own ceiling: in the tables, never a target

    @property
    def unit(self) -> str:
        return "MB/s" if self.size >= MiB else "rt/s"

    def figure(self, rt_per_s: float) -> float:
        """The scenario's figure: MB/s of payload for large messages, rt/s otherwise."""
        return rt_per_s * self.size / 1e6 if self.unit == "MB/s" else rt_per_s


SCENARIOS = (
    Scenario("loopback", "1 conn x 64 B, across CPUs (loopback yardstick)", 1, 64,
             yardstick=True),
    Scenario("one-cpu", "1 conn x 64 B, one CPU", 1, 64, one_cpu=True),
    Scenario("16-conns", "16 conns x 64 B", 16, 64),
    Scenario("1-mib", "4 conns x 1 MiB", 4, MiB),
)
BY_KEY = {s.key: s for s in SCENARIOS}


@dataclass(frozen=True, order=True)
class Series:
    """One server process kind of a run: which build, which server, which cipher."""

    build: str
    server: str
    cipher: str

    @classmethod
    def of(cls, run: Mapping[str, Any]) -> Series:
        return cls(str(run.get("build", THIS)), str(run["server"]), str(run["cipher"]))

    @property
    def reference(self) -> bool:
        return self.server == REFERENCE


YARDSTICK = Series(THIS, REFERENCE, "xor")


def usable(run: Mapping[str, Any]) -> bool:
    """A run whose every round trip was made and checked."""
    return run.get("errors") == 0 and int(run.get("round_trips", 0)) > 0


def best(runs: Iterable[Run], scenario: str, series: Series) -> float | None:
    """The best rt/s of a series on a scenario over the rounds (None: no usable run)."""
    found = [float(r["rt_per_s"]) for r in runs
             if r["scenario"] == scenario and Series.of(r) == series and usable(r)]
    return max(found) if found else None


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def series_of(runs: Iterable[Run]) -> list[Series]:
    """Every series of the runs, the yardstick first, then in order of appearance."""
    found = list(dict.fromkeys(Series.of(r) for r in runs))
    return sorted(found, key=lambda s: (not s.reference, found.index(s)))


def share(runs: list[Run], scenario: str, series: Series) -> float | None:
    """A series' best as a share of refserver's best on the same scenario."""
    return ratio(best(runs, scenario, series), best(runs, scenario, YARDSTICK))


# --- targets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetSpec:
    """One target of an implementation's registry entry ([bench.targets], see
    docs/implementations.md): its share of refserver on a scenario, for one cipher or
    for each, or ("noise/xor") its noise figure as a share of its own xor figure."""

    server: str
    scenario: str
    cipher: str | None  # None: every cipher the server has
    threshold: float
    noise_of_xor: bool = False


def parse_targets(server: str, table: Mapping[str, Any]) -> list[TargetSpec]:
    """`"SCENARIO" = X`, `"SCENARIO CIPHER" = X` or `"SCENARIO noise/xor" = X`."""
    specs = []
    for key, value in table.items():
        scenario, _, what = str(key).partition(" ")
        if scenario not in BY_KEY or BY_KEY[scenario].yardstick:
            raise ValueError(f"{server}: bench target {key!r}: no such scenario (known: "
                             f"{', '.join(s.key for s in SCENARIOS if not s.yardstick)})")
        if what not in ("", "xor", "noise", "noise/xor"):
            raise ValueError(f"{server}: bench target {key!r}: after the scenario, "
                             "xor, noise or noise/xor")
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{server}: bench target {key!r} must be a positive number")
        specs.append(TargetSpec(server, scenario, what if what in ("xor", "noise") else None,
                                float(value), noise_of_xor=what == "noise/xor"))
    return specs


def evaluate(runs: list[Run], specs: Iterable[TargetSpec], ciphers: Iterable[str]
             ) -> list[dict[str, Any]]:
    """Each target of this build, measured on the runs: PASS, FAIL or SKIP (no figure)."""
    ciphers = list(ciphers)
    out = []
    for spec in specs:
        title = BY_KEY[spec.scenario].title
        if spec.noise_of_xor:
            measured = ratio(best(runs, spec.scenario, Series(THIS, spec.server, "noise")),
                             best(runs, spec.scenario, Series(THIS, spec.server, "xor")))
            out.append(_target(f"{spec.server} noise / {spec.server} xor, {title}", spec,
                               "noise", measured))
            continue
        for cipher in [spec.cipher] if spec.cipher else ciphers:
            measured = share(runs, spec.scenario, Series(THIS, spec.server, cipher))
            out.append(_target(f"{spec.server} {cipher} / refserver, {title}", spec, cipher,
                               measured))
    return out


def _target(name: str, spec: TargetSpec, cipher: str, measured: float | None) -> dict[str, Any]:
    verdict = "SKIP" if measured is None else "PASS" if measured >= spec.threshold else "FAIL"
    return {"name": name, "server": spec.server, "scenario": spec.scenario, "cipher": cipher,
            "noise_of_xor": spec.noise_of_xor, "measured": measured,
            "threshold": spec.threshold, "verdict": verdict}


def targets_for(doc: Doc, series: Series) -> list[dict[str, Any]]:
    """The targets of a series' server on its cipher, in the document's order."""
    return [t for t in doc.get("targets", []) if t["server"] == series.server
            and t["cipher"] == series.cipher]


# --- tables -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the scenario table: a series on a scenario, for each build."""

    scenario: Scenario
    server: str
    cipher: str
    reference: float | None  # refserver's best, in the scenario's unit
    figures: dict[str, float | None]  # build -> best, in the scenario's unit
    shares: dict[str, float | None]  # build -> share of refserver

    @property
    def change(self) -> float | None:
        """This build's share over the base build's, minus one (None without a base)."""
        if BASE not in self.shares:
            return None
        moved = ratio(self.shares.get(THIS), self.shares.get(BASE))
        return None if moved is None else moved - 1


def rows(doc: Doc) -> list[Row]:
    runs = doc["rounds"]
    builds = [b["key"] for b in doc.get("builds", [{"key": THIS}])]
    servers = list(dict.fromkeys((s.server, s.cipher) for s in series_of(runs)
                                 if not s.reference))
    out = []
    for scenario in SCENARIOS:
        if not any(r["scenario"] == scenario.key for r in runs):
            continue
        ref = best(runs, scenario.key, YARDSTICK)
        for server, cipher in servers:
            bests = {b: best(runs, scenario.key, Series(b, server, cipher)) for b in builds}
            out.append(Row(scenario, server, cipher,
                           None if ref is None else scenario.figure(ref),
                           {b: None if v is None else scenario.figure(v)
                            for b, v in bests.items()},
                           {b: ratio(v, ref) for b, v in bests.items()}))
    return out


def threshold_of(doc: Doc, row: Row) -> float | None:
    """The share-of-refserver target of a table row, if it has one."""
    for t in doc.get("targets", []):
        if (t["server"], t["scenario"], t["cipher"]) == (row.server, row.scenario.key,
                                                          row.cipher) and not t["noise_of_xor"]:
            return float(t["threshold"])
    return None


def human_size(size: int) -> str:
    if size >= MiB and size % MiB == 0:
        return f"{size // MiB} MiB"
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} B"


def messages_for(size: int, connections: int, budget: int = 1024 * MiB) -> int:
    """The count bound of a run, so that no run sends more than `budget` bytes."""
    return max(4, min(2_000_000, budget // max(1, size * connections)))
