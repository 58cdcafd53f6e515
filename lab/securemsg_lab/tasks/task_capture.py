"""Task 3: a capture of a securemsg exchange, decoded (Wireshark/tshark with the dissector).

The check reads the capture itself (the lab's pcap reader; Wireshark's pcapng is first
converted with editcap, which comes with tshark), finds the xor exchanges in it and checks
that the student's answer quotes a message from one of them. When tshark and the
project's dissector are installed it also runs tshark on the file and reports what the
dissector saw.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..wire import pcap
from ..wire.protocol import DEFAULT_KEY, ack_text, split_frames, xor
from . import procs
from .result import Fail
from .workspace import REPO, Workspace

DISSECTOR = REPO / "wireshark" / "securemsg.lua"
TSHARK_TIMEOUT = 60.0
UNIT_SEPARATOR = "\x1f"  # between several plaintexts of one packet (messages hold commas)
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
SAVE_AS_PCAP = ("save the capture as pcap: tcpdump -w FILE, or in Wireshark File > Save As "
                "> Wireshark/tcpdump - pcap (or convert: editcap -F pcap FILE.pcapng "
                "task3.pcap)")


@dataclass
class Exchange:
    """One connection of the capture whose frames decrypt to messages and their ACKs."""

    server_port: int
    messages: list[bytes]


def xor_exchanges(data: bytes, key: bytes) -> list[Exchange]:
    """Every connection in which each server frame is the ACK of the client frame before."""
    found = []
    for conn in pcap.reassemble(pcap.parse_segments(data)):
        ups, _ = split_frames(conn.to_server)
        downs, _ = split_frames(conn.to_client)
        if not ups or len(downs) < len(ups):
            continue
        messages = [xor(f.payload, key) for f in ups]
        acks = [xor(f.payload, key) for f in downs[: len(ups)]]
        if acks == [ack_text(len(m)).encode() for m in messages]:
            found.append(Exchange(conn.server[1], messages))
    return found


def read_answer(path: Path) -> tuple[str, bytes]:
    """Line 1: the message read from the capture; optional `key: K` line (default key)."""
    lines = [ln.rstrip("\r\n") for ln in path.read_text(errors="replace").splitlines()]
    key = DEFAULT_KEY
    text = ""
    for line in lines:
        if line.lower().startswith("key:"):
            key = line[4:].strip().encode()
        elif line.strip() and not text:
            text = line.strip()
    return text, key


def tshark_plaintexts(capture: Path, port: int, key: bytes) -> tuple[list[str] | None, str]:
    """The plaintexts tshark with the dissector decodes (None: tshark or the dissector is
    missing or failed), and a line saying so."""
    tshark = shutil.which("tshark")
    if tshark is None or not DISSECTOR.exists():
        missing = "tshark" if tshark is None else str(DISSECTOR.relative_to(REPO))
        return None, f"tshark not used: {missing} not found (the check read the pcap itself)"
    argv = [tshark, "-n", "-r", str(capture), "-X", f"lua_script:{DISSECTOR}",
            "-o", f"securemsg.ports:{port}", "-o", f"securemsg.xor_key:{key.decode()}",
            "-Y", "securemsg.plaintext", "-T", "fields", "-e", "securemsg.plaintext",
            "-E", f"aggregator={UNIT_SEPARATOR}"]
    result = procs.run(argv, timeout=TSHARK_TIMEOUT)
    if result.returncode != 0:
        return None, f"tshark not used: it failed: {result.stderr.strip()[-200:]}"
    texts = [t for ln in result.stdout.splitlines() for t in ln.split(UNIT_SEPARATOR) if t]
    return texts, f"tshark with wireshark/securemsg.lua decodes {len(texts)} plaintexts"


def classic_pcap(capture: Path) -> bytes:
    """The capture's bytes as classic pcap: Wireshark's pcapng converted with editcap."""
    data = capture.read_bytes()
    if not data.startswith(PCAPNG_MAGIC):
        return data
    editcap = shutil.which("editcap")
    if editcap is None:
        raise Fail("task3.pcap is pcapng (Wireshark's format), and editcap is not installed "
                   "to convert it", SAVE_AS_PCAP)
    with tempfile.TemporaryDirectory(prefix="handout-") as tmp:
        converted = Path(tmp) / "task3.pcap"
        result = procs.run([editcap, "-F", "pcap", str(capture), str(converted)],
                           timeout=TSHARK_TIMEOUT)
        if result.returncode != 0:
            raise Fail(f"task3.pcap is pcapng and editcap cannot make it pcap: "
                       f"{result.output.strip()[-160:]}", SAVE_AS_PCAP + "; capture on one "
                       "interface (lo)")
        return converted.read_bytes()


def check_task3(ws: Workspace) -> str:
    capture = ws.answer("task3.pcap")
    text, key = read_answer(ws.answer("task3.txt"))
    try:
        exchanges = xor_exchanges(classic_pcap(capture), key)
    except pcap.PcapError as exc:
        raise Fail(f"task3.pcap: {exc}", SAVE_AS_PCAP) from exc
    if not exchanges:
        raise Fail("no securemsg xor exchange (a message and its ACK) in task3.pcap",
                   "capture on the interface the traffic takes (lo for 127.0.0.1), start the "
                   "capture before the client connects, and use xor mode; a key other than "
                   "the default goes on a 'key: K' line of task3.txt")
    quoted = [m for ex in exchanges for m in ex.messages]
    port = exchanges[0].server_port
    decoded, line = tshark_plaintexts(capture, port, key)
    details = [line]
    if not text:
        raise Fail("task3.txt is empty", "line 1: the message you read in Wireshark",
                   details)
    if text.encode() not in quoted:
        raise Fail(f"no message in the capture reads {text!r} "
                   f"({len(quoted)} messages in {len(exchanges)} exchanges)",
                   "open the capture with the dissector (HANDOUT.md task 3) and copy the "
                   "decrypted text of one client message", details)
    if decoded and text not in decoded:
        raise Fail(f"tshark with the dissector does not show {text!r} on port {port}",
                   "copy the text as Wireshark shows it (securemsg > Plaintext)", details)
    summary = (f"{len(exchanges)} securemsg exchange(s) on port "
               f"{exchanges[0].server_port}; your message {text!r} is one of them")
    return "\n  ".join([summary, *details])
