"""The two distributions: the programs (python/pyproject.toml: `securemsg`) and the lab
(pyproject.toml: `securemsg-lab`), each built as a wheel from a copy of its sources and
installed in a fresh venv outside the checkout.

The programs need nothing else. The lab runs from a checkout, and says so in one line when
there is none. Offline, the fresh venv borrows the lab's third-party dependencies (docker,
PyYAML, noiseprotocol) from the project venv through a path line, which installs none of
this checkout's own packages: `securemsg` and `securemsg_lab` come from the wheels.
"""

from __future__ import annotations

import os
import shutil
import site
import sys
from pathlib import Path

import pytest
from securemsg_lab.core.paths import NOT_A_CHECKOUT
from securemsg_lab.core.process import ProcResult, run
from securemsg_lab.core.timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns("__pycache__", "build", "*.egg-info", "*.pyc")


def sh(argv: list[str | Path], cwd: Path, timeout: float = 120,
       env: dict[str, str] | None = None) -> ProcResult:
    base = {k: v for k, v in os.environ.items()
            if k not in ("SECUREMSG_REPO", "PYTHONPATH", "VIRTUAL_ENV", "SECUREMSG_KEY")}
    done = run([str(word) for word in argv], cwd=cwd, timeout=scaled(timeout),
               env={**base, "NO_COLOR": "1", **(env or {})})
    return done


def must(done: ProcResult) -> ProcResult:
    assert done.exit_code == 0, (done.argv, done.stdout[-2000:], done.stderr[-2000:])
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("packaging")
    src, dist, env = tmp / "src", tmp / "dist", tmp / "venv"
    shutil.copytree(ROOT / "python", src / "python", ignore=SKIP)
    shutil.copytree(ROOT / "lab", src / "lab", ignore=SKIP)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    must(sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
             "-w", dist, src / "python", src], cwd=tmp, timeout=300))
    wheels = sorted(dist.glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == ["securemsg", "securemsg_lab"]
    must(sh([sys.executable, "-m", "venv", env], cwd=tmp))
    must(sh([env / "bin" / "python", "-m", "pip", "install", "-q", "--no-index", "--no-deps",
             *wheels], cwd=tmp, timeout=300))
    purelib = must(sh([env / "bin" / "python", "-c",
                       "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp))
    borrowed = Path(purelib.stdout.decode().strip()) / "lab-dependencies.pth"
    borrowed.write_text(site.getsitepackages()[0] + "\n")
    return env


def test_the_programs_install_and_name_the_command_typed(venv: Path) -> None:
    outside = venv.parent
    for program in ("securemsg-server", "securemsg-client"):
        done = must(sh([venv / "bin" / program, "--help"], cwd=outside))
        assert done.stdout.decode().startswith(f"Usage: {program} "), done.stdout[:200]
    where = must(sh([venv / "bin" / "python", "-c",
                     "import securemsg, securemsg_lab; print(securemsg.__file__); "
                     "print(securemsg_lab.__file__)"], cwd=outside))
    assert all(line.startswith(str(venv)) for line in where.stdout.decode().split())


def test_the_lab_outside_a_checkout_says_so_in_one_line(venv: Path) -> None:
    for tool in ("securemsg-matrix", "securemsg-demo", "securemsg-bench", "securemsg-tasks"):
        done = sh([venv / "bin" / tool], cwd=venv.parent)
        assert done.exit_code == 2, (tool, done.stdout, done.stderr)
        assert done.stderr.decode().splitlines() == [NOT_A_CHECKOUT], (tool, done.stderr)


def test_the_installed_lab_runs_a_checkout(venv: Path) -> None:
    results = venv.parent / "results"
    done = sh([venv / "bin" / "securemsg-matrix", "--backend", "local", "-c", "python",
               "-s", "python", "-t", "single_message", "--cipher", "xor",
               "--results", results], cwd=venv.parent, env={"SECUREMSG_REPO": str(ROOT)})
    must(done)
    assert (results / "results.json").exists()
