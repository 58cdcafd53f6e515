"""The command-line contract (PROTOCOL.md sections 5 and 7) as one table.

Every row is run against the C and the Python program of its kind, which must
print the same lines on stdout and stderr and exit with the same status (the
usage text may differ only in the program's name). ``error`` is the first
line the row must print on stderr, as PROTOCOL.md writes it; ``None`` means
stderr stays empty. Adding a case is adding a row.

Placeholders in ``args``, ``error`` and ``stdin``: ``{port}`` the row's fake
peer (``peer``, see test_contract.py), ``{busy}`` a port something listens on,
``{keyfile}`` a file holding ``secret\\n``, ``{crlf}`` ``secret\\r\\n``,
``{psk}`` exactly 32 bytes, ``{empty}`` an empty file, ``{blank}`` just
``\\n``, ``{missing}`` a path that does not exist, ``{dir}`` a directory.

``error=ANY``: PROTOCOL.md does not word that line; only agreement is checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ANY = "*"  # some [ERROR] line, its text not given by PROTOCOL.md
PASSPHRASE = "correct horse battery staple"  # noqa: S105 - a test passphrase
LONG = "x" * 65  # one byte over --max-frame 64


@dataclass(frozen=True)
class Row:
    name: str
    program: str  # "server" or "client"
    args: tuple[str, ...]
    status: int
    error: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    stdin: str = ""
    #: client rows: what answers on {port} ("ack", "close", "reset", "garbage", "huge",
    #: "silent" never accepts, "refused" nothing listens). Server rows: "run" starts the
    #: server, waits for its Listening line and stops it with SIGTERM.
    peer: str | None = None
    #: the row runs in a network namespace of its own with no network at all
    #: (`unshare -n`), so that name resolution fails without sending anything
    isolated: bool = False
    peer_key: bytes = b"MY_SECRET_KEY"


def server(name: str, *args: str, status: int = 2, error: str | None = None, **kw: object) -> Row:
    return Row(name, "server", args, status, error, **kw)  # type: ignore[arg-type]


def client(name: str, *args: str, status: int = 2, error: str | None = None, **kw: object) -> Row:
    return Row(name, "client", args, status, error, **kw)  # type: ignore[arg-type]


RUN = {"peer": "run"}
# Rows that should fail still name a loopback address: a program that wrongly
# accepts them listens there, not on every interface, until the run's timeout.
LOOPBACK = ("--bind", "127.0.0.1")
NOISE_DEFAULT = ("Secure mode refuses the default key MY_SECRET_KEY: it is public. "
                 "Set --key, --key-file or SECUREMSG_KEY")

ROWS: list[Row] = [
    # --- help (exit 0, usage on stdout) ---------------------------------------------
    server("server --help", "--help", status=0),
    server("server -h", "-h", status=0),
    server("server help after options", "--port", "5000", "--help", status=0),
    client("client --help", "--help", status=0),
    client("client -h", "-h", status=0),
    client("client help after options", "127.0.0.1", "5000", "--help", status=0),
    # --- server: good command lines (start, Listening line, SIGTERM, exit 0) ---------
    server("server positional port", "--bind", "127.0.0.1", "0", status=0, **RUN),
    server("server --port", "--bind", "127.0.0.1", "--port", "0", status=0, **RUN),
    server("server every option", "--bind", "127.0.0.1", "--port", "0", "--key", "k",
           "--max-frame", "64", "--idle-timeout", "0", "--max-clients", "1",
           "--frame-timeout", "0", "--min-rate", "1", "--drain-timeout", "0",
           "--cipher", "xor", status=0, **RUN),
    server("server largest values", "--bind", "127.0.0.1", "--max-frame", "1073741824",
           "--idle-timeout", "86400", "--max-clients", "100000", "--frame-timeout", "86400",
           "--min-rate", "1073741824", "--drain-timeout", "86400", "0", status=0, **RUN),
    server("server deadline options=value", "--bind", "127.0.0.1", "--frame-timeout=3",
           "--min-rate=1024", "--drain-timeout=1", "0", status=0, **RUN),
    server("server ipv6", "--bind", "::1", "0", status=0, **RUN),
    server("server option=value", "--bind=127.0.0.1", "--port=0", "--max-frame=64", status=0,
           **RUN),
    server("server -- before the port", "--bind", "127.0.0.1", "--", "0", status=0, **RUN),
    server("server key file", "--bind", "127.0.0.1", "--key-file", "{crlf}", "0",
           status=0, **RUN),
    server("server key from env", "--bind", "127.0.0.1", "0", status=0,
           env={"SECUREMSG_KEY": "from-env"}, **RUN),
    server("server noise psk file", "--bind", "127.0.0.1", "--cipher", "noise",
           "--key-file", "{psk}", "0", status=0, **RUN),
    server("server noise passphrase", "--bind", "127.0.0.1", "--cipher", "noise",
           "--key", PASSPHRASE, "0", status=0, **RUN),
    # --- server: usage errors (exit 2, [ERROR] line + usage on stderr) ---------------
    server("server no arguments", error="[ERROR] Missing port"),
    server("server invalid port", *LOOPBACK, "abc", error="[ERROR] Invalid port: abc"),
    server("server port too big", *LOOPBACK, "65536", error="[ERROR] Invalid port: 65536"),
    server("server negative port", *LOOPBACK, "--port", "-1", error="[ERROR] Invalid port: -1"),
    server("server unknown option", *LOOPBACK, "--frob", "5000",
           error="[ERROR] Unknown option: --frob"),
    server("server abbreviated option", *LOOPBACK, "--po", "5000",
           error="[ERROR] Unknown option: --po"),
    server("server unknown short option", *LOOPBACK, "-x", "5000",
           error="[ERROR] Unknown option: -x"),
    server("server unknown option=value", *LOOPBACK, "--frob=1", "5000",
           error="[ERROR] Unknown option: --frob"),
    # PROTOCOL.md section 5: help takes no value, in either spelling
    server("server --help=value", "--help=1", error="[ERROR] Unknown option: --help"),
    server("server -h=value", "-h=1", error="[ERROR] Unknown option: -h"),
    server("server -h with letters", "-hx", error="[ERROR] Unknown option: -h"),
    server("server client option", *LOOPBACK, "--message", "hi", "5000",
           error="[ERROR] Unknown option: --message"),
    server("server unexpected argument", *LOOPBACK, "5000", "extra",
           error="[ERROR] Unexpected argument: extra"),
    server("server port twice", *LOOPBACK, "--port", "5000", "5001",
           error="[ERROR] Port given twice (positional and --port)"),
    server("server missing value", *LOOPBACK, "5000", "--key",
           error="[ERROR] Missing value for --key"),
    server("server missing value for --port", *LOOPBACK, "--port",
           error="[ERROR] Missing value for --port"),
    server("server max-frame not a number", *LOOPBACK, "--max-frame", "12x", "5000",
           error="[ERROR] Invalid value for --max-frame: 12x"),
    server("server max-frame too small", *LOOPBACK, "--max-frame", "63", "5000",
           error="[ERROR] Invalid value for --max-frame: 63"),
    server("server max-frame too big", *LOOPBACK, "--max-frame", "1073741825", "5000",
           error="[ERROR] Invalid value for --max-frame: 1073741825"),
    server("server idle-timeout too big", *LOOPBACK, "--idle-timeout", "86401", "5000",
           error="[ERROR] Invalid value for --idle-timeout: 86401"),
    server("server idle-timeout negative", *LOOPBACK, "--idle-timeout", "-1", "5000",
           error="[ERROR] Invalid value for --idle-timeout: -1"),
    server("server max-clients zero", *LOOPBACK, "--max-clients", "0", "5000",
           error="[ERROR] Invalid value for --max-clients: 0"),
    server("server max-clients too big", *LOOPBACK, "--max-clients", "100001", "5000",
           error="[ERROR] Invalid value for --max-clients: 100001"),
    server("server max-clients not a number", *LOOPBACK, "--max-clients", "1e3", "5000",
           error="[ERROR] Invalid value for --max-clients: 1e3"),
    server("server frame-timeout not a number", *LOOPBACK, "--frame-timeout", "1.5", "5000",
           error="[ERROR] Invalid value for --frame-timeout: 1.5"),
    server("server frame-timeout negative", *LOOPBACK, "--frame-timeout", "-1", "5000",
           error="[ERROR] Invalid value for --frame-timeout: -1"),
    server("server frame-timeout too big", *LOOPBACK, "--frame-timeout", "86401", "5000",
           error="[ERROR] Invalid value for --frame-timeout: 86401"),
    server("server frame-timeout empty", *LOOPBACK, "--frame-timeout=", "5000",
           error="[ERROR] Invalid value for --frame-timeout: "),
    server("server min-rate not a number", *LOOPBACK, "--min-rate", "64k", "5000",
           error="[ERROR] Invalid value for --min-rate: 64k"),
    server("server min-rate zero", *LOOPBACK, "--min-rate", "0", "5000",
           error="[ERROR] Invalid value for --min-rate: 0"),
    server("server min-rate too big", *LOOPBACK, "--min-rate", "1073741825", "5000",
           error="[ERROR] Invalid value for --min-rate: 1073741825"),
    server("server drain-timeout not a number", *LOOPBACK, "--drain-timeout", "+5", "5000",
           error="[ERROR] Invalid value for --drain-timeout: +5"),
    server("server drain-timeout too big", *LOOPBACK, "--drain-timeout", "86401", "5000",
           error="[ERROR] Invalid value for --drain-timeout: 86401"),
    server("server missing value for --drain-timeout", *LOOPBACK, "5000", "--drain-timeout",
           error="[ERROR] Missing value for --drain-timeout"),
    server("server client-only option", *LOOPBACK, "--host", "127.0.0.1", "5000",
           error="[ERROR] Unknown option: --host"),
    server("server bad cipher", *LOOPBACK, "--cipher", "rot13", "5000",
           error="[ERROR] Invalid value for --cipher: rot13"),
    server("server empty bind", "--bind", "", "5000",
           error="[ERROR] Invalid value for --bind: (empty)"),
    server("server key and key file", *LOOPBACK, "--key", "k", "--key-file", "{keyfile}", "5000",
           error="[ERROR] Give either --key or --key-file, not both"),
    server("server empty key", *LOOPBACK, "--key", "", "5000", error="[ERROR] Empty key"),
    server("server empty key file", *LOOPBACK, "--key-file", "{empty}", "5000",
           error="[ERROR] Empty key from --key-file"),
    server("server key file of one newline", *LOOPBACK, "--key-file", "{blank}", "5000",
           error="[ERROR] Empty key from --key-file"),
    server("server empty env key", *LOOPBACK, "5000", env={"SECUREMSG_KEY": ""},
           error="[ERROR] Empty key from SECUREMSG_KEY"),
    server("server noise default key", *LOOPBACK, "--cipher", "noise", "5000",
           error=f"[ERROR] {NOISE_DEFAULT}"),
    server("server noise default key given", *LOOPBACK, "--cipher", "noise",
           "--key", "MY_SECRET_KEY",
           "5000", error=f"[ERROR] {NOISE_DEFAULT}"),
    server("server control bytes escaped", *LOOPBACK, "--fr\x1bob", "5000",
           error="[ERROR] Unknown option: --fr\\x1bob"),
    # --- server: runtime failures (exit 1) --------------------------------------------
    server("server missing key file", *LOOPBACK, "--key-file", "{missing}", "5000", status=1,
           error="[ERROR] Cannot read key file {missing}: No such file or directory"),
    server("server key file is a directory", *LOOPBACK, "--key-file", "{dir}", "5000", status=1,
           error="[ERROR] Cannot read key file {dir}: Is a directory"),
    server("server port in use", "--bind", "127.0.0.1", "{busy}", status=1,
           error="[ERROR] Cannot listen on 127.0.0.1:{busy}: Address already in use"),
    # --- client: good command lines ---------------------------------------------------
    client("client positional", "127.0.0.1", "{port}", "Hello from C", status=0, peer="ack"),
    client("client options", "--host", "127.0.0.1", "--port", "{port}", "--message", "Hi",
           status=0, peer="ack"),
    client("client empty message", "127.0.0.1", "{port}", "--message", "", status=0,
           peer="ack"),
    client("client escapes nothing it sends", "127.0.0.1", "{port}", "caf\u00e9 \\ done",
           status=0, peer="ack"),
    client("client interactive", "127.0.0.1", "{port}", status=0, stdin="one\ntwo\r\n\nthree\n",
           peer="ack"),
    client("client interactive end of input", "127.0.0.1", "{port}", status=0,
           stdin="last line without newline", peer="ack"),
    client("client key option", "--key", "k3y", "127.0.0.1", "{port}", "Hi", status=0,
           peer="ack", peer_key=b"k3y"),
    client("client key file", "--key-file", "{keyfile}", "127.0.0.1", "{port}", "Hi",
           status=0, peer="ack", peer_key=b"secret"),
    client("client env key", "127.0.0.1", "{port}", "Hi", status=0, peer="ack",
           env={"SECUREMSG_KEY": "from-env"}, peer_key=b"from-env"),
    client("client option key beats env", "--key", "k3y", "127.0.0.1", "{port}", "Hi",
           status=0, peer="ack", env={"SECUREMSG_KEY": "from-env"}, peer_key=b"k3y"),
    client("client every option", "--host", "127.0.0.1", "--port", "{port}", "--message", "Hi",
           "--max-frame", "64", "--idle-timeout", "5", "--cipher", "xor", status=0,
           peer="ack"),
    # --- client: usage errors ---------------------------------------------------------
    client("client no arguments", error="[ERROR] Missing host"),
    client("client missing port", "127.0.0.1", error="[ERROR] Missing port"),
    client("client invalid port", "127.0.0.1", "abc", error="[ERROR] Invalid port: abc"),
    client("client port zero", "127.0.0.1", "0", error="[ERROR] Invalid port: 0"),
    client("client port too big", "127.0.0.1", "65536", error="[ERROR] Invalid port: 65536"),
    client("client unknown option", "--frob", "127.0.0.1", "5000",
           error="[ERROR] Unknown option: --frob"),
    client("client abbreviated option", "127.0.0.1", "5000", "--mes", "hi",
           error="[ERROR] Unknown option: --mes"),
    client("client --help=value", "--help=yes", error="[ERROR] Unknown option: --help"),
    client("client -h=value", "-h=1", error="[ERROR] Unknown option: -h"),
    client("client server option", "--max-clients", "3", "127.0.0.1", "5000",
           error="[ERROR] Unknown option: --max-clients"),
    client("client server deadline option", "--frame-timeout", "3", "127.0.0.1", "5000",
           error="[ERROR] Unknown option: --frame-timeout"),
    client("client drain option", "--drain-timeout=1", "127.0.0.1", "5000",
           error="[ERROR] Unknown option: --drain-timeout"),
    client("client bind option", "--bind", "127.0.0.1", "127.0.0.1", "5000",
           error="[ERROR] Unknown option: --bind"),
    client("client unexpected argument", "127.0.0.1", "5000", "Hi", "extra",
           error="[ERROR] Unexpected argument: extra"),
    client("client port twice", "--port", "5000", "localhost", "Hi",
           error="[ERROR] Port given twice (positional and --port)"),
    client("client host twice", "--host", "127.0.0.1", "localhost", "5000",
           error="[ERROR] Host given twice (positional and --host)"),
    client("client message twice", "--message", "a", "127.0.0.1", "5000", "b",
           error="[ERROR] Message given twice (positional and --message)"),
    client("client empty host", "", "5000", error="[ERROR] Invalid host: (empty)"),
    client("client empty --host", "--host", "", "--port", "5000",
           error="[ERROR] Invalid host: (empty)"),
    client("client missing value", "127.0.0.1", "5000", "--message",
           error="[ERROR] Missing value for --message"),
    client("client max-frame not a number", "--max-frame", "1M", "127.0.0.1", "5000",
           error="[ERROR] Invalid value for --max-frame: 1M"),
    client("client idle-timeout not a number", "--idle-timeout", "1.5", "127.0.0.1", "5000",
           error="[ERROR] Invalid value for --idle-timeout: 1.5"),
    client("client bad cipher", "--cipher", "aes", "127.0.0.1", "5000",
           error="[ERROR] Invalid value for --cipher: aes"),
    client("client key and key file", "--key-file", "{keyfile}", "--key", "k", "127.0.0.1",
           "5000", error="[ERROR] Give either --key or --key-file, not both"),
    client("client empty key", "--key", "", "127.0.0.1", "5000", error="[ERROR] Empty key"),
    client("client empty key file", "--key-file", "{empty}", "127.0.0.1", "5000",
           error="[ERROR] Empty key from --key-file"),
    client("client empty env key", "127.0.0.1", "5000", env={"SECUREMSG_KEY": ""},
           error="[ERROR] Empty key from SECUREMSG_KEY"),
    client("client noise default key", "--cipher", "noise", "127.0.0.1", "5000",
           error=f"[ERROR] {NOISE_DEFAULT}"),
    client("client noise default key from env", "--cipher", "noise", "127.0.0.1", "5000",
           env={"SECUREMSG_KEY": "MY_SECRET_KEY"}, error=f"[ERROR] {NOISE_DEFAULT}"),
    # --- client: runtime failures (exit 1) --------------------------------------------
    client("client missing key file", "--key-file", "{missing}", "127.0.0.1", "5000",
           status=1, error="[ERROR] Cannot read key file {missing}: No such file or directory"),
    client("client cannot resolve", "no-such-host.invalid", "5000", "Hi", status=1,
           isolated=True,
           error="[ERROR] Cannot resolve no-such-host.invalid: "
                 "Temporary failure in name resolution"),
    client("client connection refused", "127.0.0.1", "{port}", "Hi", status=1, peer="refused",
           error="[ERROR] Cannot connect to 127.0.0.1:{port}: Connection refused"),
    client("client noise connection refused", "--cipher", "noise", "--key-file", "{psk}",
           "127.0.0.1", "{port}", "Hi", status=1, peer="refused",
           error="[ERROR] Cannot connect to 127.0.0.1:{port}: Connection refused"),
    client("client ipv6 target", "::1", "{port}", "Hi", status=1, peer="refused",
           error="[ERROR] Cannot connect to [::1]:{port}: Connection refused"),
    client("client closed before the ACK", "127.0.0.1", "{port}", "Hi", status=1,
           peer="close", error="[ERROR] Connection to 127.0.0.1:{port} closed before the ACK"),
    client("client connection reset", "127.0.0.1", "{port}", "Hi", status=1, peer="reset",
           error="[ERROR] Receive from 127.0.0.1:{port} failed: Connection reset by peer"),
    client("client malformed ACK", "127.0.0.1", "{port}", "Hi", status=1, peer="garbage",
           error="[ERROR] Malformed ACK from 127.0.0.1:{port}: ACK: Received 3 bytes\\x1b[2J"),
    client("client ACK frame too large", "--max-frame", "64", "127.0.0.1", "{port}", "Hi",
           status=1, peer="huge",
           error="[ERROR] ACK frame too large from 127.0.0.1:{port}: "
                 "2147483647 bytes (limit 64)"),
    client("client message too large", "--max-frame", "64", "127.0.0.1", "{port}", LONG,
           status=1, peer="ack", error="[ERROR] Message too large: 65 bytes (limit 64)"),
    client("client timed out waiting for the ACK", "--idle-timeout", "1", "127.0.0.1",
           "{port}", "Hi", status=1, peer="silent",
           error="[ERROR] Timed out after 1 s waiting for 127.0.0.1:{port}"),
]
