"""Grading one submission: the matrix's cases against the reference implementations, the
submission as client and as server, scored per case from the checks of its cells.

A submission is a folder with an implementation entry (docs/implementations.md); it
joins the registry as `submission`, each of its programs behind the jail (limits). The
weights and visibility come from a TOML file (default.toml ships; docs/grading.md).
The result is Gradescope's results.json: score, and one test per case, cipher and role.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.backend import Backend
from ..core.registry import Implementation, Registry, RegistryError, from_toml
from ..matrix.cases import CASES
from ..matrix.cells import ERROR, PASSED, UNSUPPORTED, CellOutcome, CellSpec, run_cells
from . import jail as jail_module

SUBMISSION = "submission"
DEFAULT_CONFIG = Path(__file__).with_name("default.toml")
ROLES = ("client", "server")
#: the fields of results.json and of each of its tests (docs/grading.md)
RESULT_FIELDS = ("score", "max_score", "execution_time", "output", "visibility",
                 "stdout_visibility", "tests")
TEST_FIELDS = ("name", "score", "max_score", "status", "output", "visibility")


class SubmissionError(Exception):
    """The folder holds no usable implementation entry, or it did not build."""


@dataclass
class Config:
    time_limit: float = 1500.0
    ciphers: list[str] = field(default_factory=lambda: ["xor", "noise"])
    references: list[str] = field(default_factory=list)
    jobs: int = 0
    limits: dict[str, int] = field(default_factory=dict)
    checks: dict[str, float] = field(default_factory=dict)
    lifecycle: dict[str, Any] = field(default_factory=dict)
    default: dict[str, Any] = field(default_factory=dict)
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)

    def case(self, name: str) -> dict[str, Any]:
        return {"weight": 1, "visibility": "visible", "roles": list(ROLES),
                **self.default, **self.cases.get(name, {})}


def load_config(path: Path | None = None) -> Config:
    doc = tomllib.loads((path or DEFAULT_CONFIG).read_text(encoding="utf-8"))
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown} (known: {sorted(known)})")
    return Config(**doc)


def load_submission(folder: Path, config: Config) -> Implementation:
    """The folder's entry as `submission`, its local programs behind the jail."""
    entries = [folder / "implementation.toml"] if (folder / "implementation.toml").exists() \
        else sorted(folder.glob("*.toml"))
    if len(entries) != 1:
        raise SubmissionError(f"{folder}: expected one implementation entry "
                              f"(implementation.toml), found {len(entries)}")
    try:
        impl = from_toml(entries[0])
    except RegistryError as error:
        raise SubmissionError(str(error)) from error
    limits = config.limits
    # run as a file, without site: a jailed program starts as fast as it can
    jail = (sys.executable, "-I", "-S", str(Path(jail_module.__file__)),
            "--cpu", str(limits.get("cpu_seconds", 30)),
            "--memory", str(limits.get("memory_mb", 1024)),
            "--output", str(limits.get("output_kb", 4096)), "--")
    jailed = {key: jail + getattr(impl, key) if getattr(impl, key) else ()
              for key in ("local_server", "local_client")}
    return dataclasses.replace(impl, name=SUBMISSION, reference=False, **jailed)


@dataclass(frozen=True)
class Item:
    """One test of results.json: a case in a cipher, the submission in one role."""

    case: str
    cipher: str
    role: str

    @property
    def name(self) -> str:
        return f"{self.case} ({self.cipher}): submission as {self.role}"


def plan(config: Config, registry: Registry, submission: Implementation,
         backend: str) -> dict[Item, list[CellSpec]]:
    """Each test and its cells: one per reference peer (one in all where the harness
    plays the server), in the roles where the case runs the submission's program. Noise
    only where the entry claims it."""
    peers = config.references or registry.reference_names()
    items: dict[Item, list[CellSpec]] = {}
    for cipher in config.ciphers:
        if not submission.has(cipher):
            continue
        for case in CASES:
            settings = config.case(case.name)
            if not settings["weight"] or cipher not in case.ciphers \
                    or backend not in case.backends:
                continue
            if "client" in settings["roles"] and case.uses_client:
                mine = peers if case.uses_server else peers[:1]
                items[Item(case.name, cipher, "client")] = [
                    CellSpec(SUBMISSION, peer, case.name, cipher) for peer in mine]
            if "server" in settings["roles"] and case.uses_server:
                items[Item(case.name, cipher, "server")] = [
                    CellSpec(peer, SUBMISSION, case.name, cipher) for peer in peers]
    return items


def run(backend: Backend, registry: Registry, specs: list[CellSpec], cells_dir: Path,
        jobs: int, deadline: float) -> tuple[dict[CellSpec, CellOutcome], str]:
    """The cells, until `deadline` (monotonic); those not done by then are errors. The
    second value: why nothing ran (the build failed), or ""."""
    done: dict[CellSpec, CellOutcome] = {}
    failure: list[str] = []

    def work() -> None:
        try:
            run_cells(backend, specs, cells_dir, jobs, lambda o: done.setdefault(o.spec, o),
                      registry)
        except Exception as error:  # noqa: BLE001 - any failure to build or start is graded
            failure.append(f"{type(error).__name__}: {error}")

    worker = threading.Thread(target=work, name="grade", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    late = "not run: the grading time limit passed" if worker.is_alive() else "not run"
    outcomes = {spec: done.get(spec) or CellOutcome(spec, ERROR, [late]) for spec in specs}
    return outcomes, failure[0] if failure and not done else ""


def cell_share(outcome: CellOutcome, weights: dict[str, float]) -> tuple[float, list[str]]:
    """The weighted share of the cell's checks that held, and what did not."""
    if outcome.status == UNSUPPORTED:
        return 0.0, [f"not implemented: {'; '.join(outcome.reasons)}"]
    if outcome.status == ERROR:
        return 0.0, [f"the run broke: {outcome.reasons[0] if outcome.reasons else '?'}"]
    counted = {name: why for name, why in outcome.checks.items() if weights.get(name, 0) > 0}
    if not counted:
        return (1.0 if outcome.status == PASSED else 0.0), outcome.reasons[:3]
    held = sum(weights[name] for name, why in counted.items() if not why)
    return held / sum(weights[name] for name in counted), \
        [f"{name}: {why[0]}" for name, why in counted.items() if why]


def lifecycle_held(outcome: CellOutcome, role: str) -> bool:
    """Whether the submission's own program (client or server) started and ended right;
    a run that broke (did not start, hung) did not."""
    if outcome.status == ERROR:
        return False
    return not any(reason.startswith(role) for reason in outcome.checks.get("lifecycle", []))


def describe(outcome: CellOutcome, share: float, why: list[str]) -> str:
    spec = outcome.spec
    peer = spec.server if spec.client == SUBMISSION else spec.client
    text = f"against the {peer} reference: {share:.0%} of the checks held"
    return text + "".join(f"\n  - {reason}" for reason in why[:4])


def test(name: str, score: float, max_score: float, output: str, visibility: str) -> dict:
    return {"name": name, "score": round(score, 3), "max_score": max_score,
            "status": "passed" if score >= max_score - 1e-9 else "failed",
            "output": output, "visibility": visibility}


def score(config: Config, items: dict[Item, list[CellSpec]],
          outcomes: dict[CellSpec, CellOutcome], fatal: str = "") -> list[dict]:
    """results.json's tests: each item, then the lifecycle once per role."""
    tests = []
    for item, specs in items.items():
        settings = config.case(item.case)
        weight = float(settings["weight"])
        if fatal:
            tests.append(test(item.name, 0.0, weight, fatal, settings["visibility"]))
            continue
        shares = [cell_share(outcomes[spec], config.checks) for spec in specs]
        mean = sum(share for share, _ in shares) / len(shares)
        output = "\n".join(describe(outcomes[spec], share, why)
                           for spec, (share, why) in zip(specs, shares, strict=True))
        tests.append(test(item.name, weight * mean, weight, output, settings["visibility"]))
    life = config.lifecycle
    for role in ROLES:
        cells = [s for item, specs in items.items() if item.role == role for s in specs]
        mine = cells if fatal else [outcomes[s] for s in cells
                                    if outcomes[s].status != UNSUPPORTED]
        if not mine or not life.get("max_score"):
            continue
        held = [] if fatal else [o for o in mine if lifecycle_held(o, role)]
        bad = [] if fatal else [f"{o.spec.case} ({o.spec.cipher})" for o in mine
                                if o not in held]
        output = fatal or (f"{len(held)} of {len(mine)} runs started and ended as PROTOCOL.md "
                           "§5-6 says" + (f"; not: {', '.join(bad[:8])}" if bad else ""))
        tests.append(test(f"lifecycle: submission as {role} (start-up, exit, shutdown)",
                          life["max_score"] * len(held) / len(mine), float(life["max_score"]),
                          output, life.get("visibility", "visible")))
    return tests


def results_json(tests: list[dict], seconds: float, note: str) -> dict:
    total = sum(t["score"] for t in tests)
    most = sum(t["max_score"] for t in tests)
    return {"score": round(total, 3), "max_score": most, "execution_time": round(seconds, 1),
            "output": f"{note}\n{total:.1f} of {most:.1f} points.".strip(),
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}
