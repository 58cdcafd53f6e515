"""securemsg-matrix --capture (local backend): each cell's traffic in its folder, decoded
by the lab's reader and, with tshark, by the project's dissector; shown in the report."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from securemsg_lab.core.process import run
from securemsg_lab.core.timeouts import scaled

from ..support import needs

pytestmark = pytest.mark.timeout(600)


def test_each_cell_gets_its_own_decoded_capture(tmp_path: Path) -> None:
    needs.tool("tcpdump", "tcpdump (make setup installs it)")
    results = tmp_path / "results"
    done = run([sys.executable, "-m", "securemsg_lab.matrix", "--backend", "local", "--capture",
                "-c", "c", "-s", "python", "-t", "single_message,malformed_ack", "--cipher",
                "xor", "-j", "2", "--results", str(results)], role="matrix",
               timeout=scaled(300))
    out = done.stdout.decode()
    if "tcpdump did not start" in done.stderr.decode():
        needs.missing("no permission to capture on loopback here")
    assert done.exit_code == 0, out[-3000:] + done.stderr.decode()[-2000:]
    assert "captures: 2 cells decoded" in out
    single = (results / "python_c" / "single_message" / "capture.txt").read_text()
    assert "-> frame      12 bytes: Hello from c\n" in single
    assert "<- frame      22 bytes: ACK: Received 12 bytes\n" in single
    assert single.count("connection ") == 1  # the other cell's traffic is not in it
    fake = (results / "python_c" / "malformed_ack" / "capture.txt").read_text()
    assert "<- frame      30 bytes: ACK: Received 999 bytes \\x1b[31m\\n" in fake
    if shutil.which("tshark"):
        dissected = (results / "python_c" / "single_message" / "capture.tshark.txt").read_text()
        assert 'SECUREMSG' in dissected and '"Hello from c"' in dissected
    page = (results / "index.html").read_text()
    assert 'href="python_c/single_message/capture.pcap"' in page
    assert "ACK: Received 12 bytes" in page
