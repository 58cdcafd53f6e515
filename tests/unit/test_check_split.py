"""A cell's reasons split by check (issue 18): a server with no SIGTERM handler fails
only its lifecycle; a wrong ACK only the wire; a wrong plaintext only the plaintext."""

from __future__ import annotations

from securemsg_lab.core.process import ProcResult
from securemsg_lab.matrix.cases import broken
from securemsg_lab.matrix.checks import CHECKS, LIFECYCLE, LOG, PLAINTEXT, WIRE, Checker, Conn

PEER = "127.0.0.1:40000"
MESSAGE = b"hello"


def proc(role: str, out: list[str], exit_code: int | None = 0, err: list[str] = ()) -> ProcResult:
    return ProcResult(role, [role], exit_code, "".join(f"{x}\n" for x in out).encode(),
                      "".join(f"{x}\n" for x in err).encode(), 0.1)


def server_lines(recv: str = "[RECV] Plaintext: hello", shutdown: bool = True) -> list[str]:
    lines = ["[INFO] Listening on 127.0.0.1:5000", f"[INFO] Client connected: {PEER}", recv,
             "[SEND] ACK sent to client", f"[INFO] Client disconnected: {PEER}"]
    return lines + (["[INFO] Shutting down"] if shutdown else [])


def failed_checks(checker: Checker) -> set[str]:
    return {name for name, reasons in checker.result().checks.items() if reasons}


def test_a_correct_server_passes_every_check_it_makes() -> None:
    checker = Checker()
    checker.server(proc("server", server_lines()), "xor", [Conn([MESSAGE], peer=PEER)])
    result = checker.result()
    assert result.passed and not failed_checks(checker)
    assert set(result.checks) == {LIFECYCLE, LOG, PLAINTEXT}  # its log shows no wire


def test_no_sigterm_handler_fails_only_the_lifecycle() -> None:
    checker = Checker()
    checker.server(proc("server", server_lines(shutdown=False), exit_code=-15), "xor",
                   [Conn([MESSAGE], peer=PEER)])
    assert failed_checks(checker) == {LIFECYCLE}
    assert len(checker.result().checks[LIFECYCLE]) == 2  # the exit code and the last line


def test_a_wrong_plaintext_fails_only_the_plaintext() -> None:
    checker = Checker()
    checker.server(proc("server", server_lines("[RECV] Plaintext: hellO")), "xor",
                   [Conn([MESSAGE], peer=PEER)])
    assert failed_checks(checker) == {PLAINTEXT}


def test_a_wrong_ack_value_fails_only_the_wire() -> None:
    checker = Checker()
    client = proc("client", ["[SEND] Encrypted bytes: 5 bytes", "[RECV] ACK: Received 21 bytes"])
    checker.client(client, "xor", "127.0.0.1:5000", [MESSAGE])
    assert failed_checks(checker) == {WIRE}
    assert checker.result().reasons == checker.result().checks[WIRE]


def test_a_broken_run_is_an_error_in_every_check() -> None:
    result = broken("run aborted: LaunchError: no Listening line")
    assert result.error and not result.passed and set(result.checks) == set(CHECKS)
