"""Command lines of PROTOCOL.md section 5."""

from __future__ import annotations

from pathlib import Path

import pytest
from securemsg.config import (
    HelpRequested,
    default_max_clients,
    load_key,
    parse_client_args,
    parse_server_args,
)
from securemsg.errors import KeyFileError, UsageError

pytestmark = pytest.mark.usefixtures("no_key_env")


def usage_error(parse, argv: list[str]) -> str:
    with pytest.raises(UsageError) as info:
        parse(argv)
    return str(info.value)


# --- server -------------------------------------------------------------------


def test_server_defaults() -> None:
    config = parse_server_args(["5000"])
    assert (config.port, config.bind, config.cipher) == (5000, "0.0.0.0", "xor")
    assert (config.max_frame, config.idle_timeout) == (1048576, 300)
    assert (config.frame_timeout, config.min_rate, config.drain_timeout) == (10, 65536, 5)
    assert config.max_clients == default_max_clients()
    assert config.key.key == b"MY_SECRET_KEY" and config.key.source == "default"


@pytest.mark.parametrize("argv", [["5000"], ["--port", "5000"], ["--port=5000"]])
def test_server_port_spellings(argv: list[str]) -> None:
    assert parse_server_args(argv).port == 5000


def test_server_all_options_and_intermixed_order() -> None:
    config = parse_server_args(
        [
            "--bind",
            "::1",
            "0",
            "--max-frame",
            "64",
            "--idle-timeout",
            "0",
            "--max-clients",
            "10000",
            "--cipher",
            "xor",
            "--key",
            "k",
        ]
    )
    assert config.port == 0 and config.bind == "::1"
    assert (config.max_frame, config.idle_timeout, config.max_clients) == (64, 0, 10000)
    assert config.key.key == b"k"


def test_config_is_frozen() -> None:
    config = parse_server_args(["1"])
    with pytest.raises(AttributeError):
        config.port = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "Missing port"),
        (["abc"], "Invalid port: abc"),
        (["65536"], "Invalid port: 65536"),
        (["-1"], "Invalid port: -1"),
        (["+5"], "Invalid port: +5"),
        ([" 5"], "Invalid port:  5"),
        (["5000", "--port", "5000"], "Port given twice (positional and --port)"),
        (["5000", "6000"], "Unexpected argument: 6000"),
        (["5000", "--frob"], "Unknown option: --frob"),
        (["5000", "--frob=1"], "Unknown option: --frob"),
        (["5000", "--max-frame", "12x"], "Invalid value for --max-frame: 12x"),
        (["5000", "--max-frame", "63"], "Invalid value for --max-frame: 63"),
        (["5000", "--max-frame", "1073741825"], "Invalid value for --max-frame: 1073741825"),
        (["5000", "--idle-timeout", "86401"], "Invalid value for --idle-timeout: 86401"),
        (["5000", "--max-clients", "0"], "Invalid value for --max-clients: 0"),
        (["5000", "--max-clients", "100001"], "Invalid value for --max-clients: 100001"),
        (["5000", "--frame-timeout", "86401"], "Invalid value for --frame-timeout: 86401"),
        (["5000", "--min-rate", "0"], "Invalid value for --min-rate: 0"),
        (["5000", "--drain-timeout", "-1"], "Invalid value for --drain-timeout: -1"),
        (["5000", "--cipher", "aes"], "Invalid value for --cipher: aes"),
        (["5000", "--port"], "Missing value for --port"),
        (["5000", "--key", ""], "Empty key"),
        (["5000", "--bind", ""], "Invalid value for --bind: (empty)"),
        (["5000", "--message", "x"], "Unknown option: --message"),
        (["\x1b[31m"], "Invalid port: \\x1b[31m"),
    ],
)
def test_server_usage_errors(argv: list[str], message: str) -> None:
    assert usage_error(parse_server_args, argv) == message


def test_help_wins(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["-h"], ["--help"], ["--frob", "-h"], ["abc", "--help"]):
        with pytest.raises(HelpRequested):
            parse_server_args(argv)
        with pytest.raises(HelpRequested):
            parse_client_args(argv)
    assert capsys.readouterr() == ("", "")  # parsing never prints


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--help=1"], "Unknown option: --help"), (["-h=1"], "Unknown option: -h"),
     (["-hx"], "Unknown option: -h")],
)
def test_help_takes_no_value(argv: list[str], message: str) -> None:
    """PROTOCOL.md section 5: as in C, the error names the spelling typed."""
    assert usage_error(parse_server_args, argv) == message
    assert usage_error(parse_client_args, argv) == message


# --- client -------------------------------------------------------------------


def test_client_positional() -> None:
    config = parse_client_args(["127.0.0.1", "5000", "Hello from C"])
    assert (config.host, config.port, config.message) == ("127.0.0.1", 5000, b"Hello from C")
    assert (config.idle_timeout, config.max_frame, config.cipher) == (30, 1048576, "xor")


def test_client_options() -> None:
    config = parse_client_args(["--host", "::1", "--port", "5000", "--message", "Hello"])
    assert (config.host, config.port, config.message) == ("::1", 5000, b"Hello")


def test_client_mixed_spellings() -> None:
    """Positional arguments keep their places: HOST, then PORT, then MESSAGE."""
    config = parse_client_args(["--port", "5000", "localhost"])
    assert (config.host, config.port, config.message) == ("localhost", 5000, None)
    config = parse_client_args(["h", "7", "--message", "msg"])
    assert (config.host, config.port, config.message) == ("h", 7, b"msg")
    config = parse_client_args(["--message", "m", "--port", "7", "h"])
    assert (config.host, config.port, config.message) == ("h", 7, b"m")


def test_client_interactive_when_no_message() -> None:
    assert parse_client_args(["h", "1"]).message is None


def test_client_empty_message_is_a_message() -> None:
    assert parse_client_args(["h", "1", "--message", ""]).message == b""
    assert parse_client_args(["h", "1", ""]).message == b""


def test_client_message_after_double_dash() -> None:
    assert parse_client_args(["h", "1", "--", "--not-an-option"]).message == b"--not-an-option"


def test_client_message_bytes_survive() -> None:
    # argv bytes Python could not decode come back as the same bytes.
    assert parse_client_args(["h", "1", "caf\udce9"]).message == b"caf\xe9"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "Missing host"),
        (["h"], "Missing port"),
        (["h", "0"], "Invalid port: 0"),
        (["h", "x"], "Invalid port: x"),
        (["h", "1", "m", "extra"], "Unexpected argument: extra"),
        (["--host", "h", "h2", "1"], "Host given twice (positional and --host)"),
        (["--port", "5000", "localhost", "Hi"], "Port given twice (positional and --port)"),
        (["h", "1", "m", "--message", "m2"], "Message given twice (positional and --message)"),
        (["h", "1", "--max-clients", "5"], "Unknown option: --max-clients"),
        (["h", "1", "--bind", "::"], "Unknown option: --bind"),
        (["", "1"], "Invalid host: (empty)"),
        (["h", "1", "--idle-timeout", "1.5"], "Invalid value for --idle-timeout: 1.5"),
    ],
)
def test_client_usage_errors(argv: list[str], message: str) -> None:
    assert usage_error(parse_client_args, argv) == message


# --- keys ---------------------------------------------------------------------


def write(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "key"
    path.write_bytes(data)
    return str(path)


def test_key_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = write(tmp_path, b"from-file\n")
    monkeypatch.setenv("SECUREMSG_KEY", "from-env")
    assert load_key("from-option", None).key == b"from-option"
    assert load_key(None, key_file).key == b"from-file"
    assert load_key(None, None).key == b"from-env"
    monkeypatch.delenv("SECUREMSG_KEY")
    assert load_key(None, None).key == b"MY_SECRET_KEY"


def test_key_and_key_file_conflict(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="either --key or --key-file"):
        parse_server_args(["1", "--key", "k", "--key-file", write(tmp_path, b"k")])


@pytest.mark.parametrize(
    ("content", "key"),
    [
        (b"secret", b"secret"),
        (b"secret\n", b"secret"),
        (b"secret\r\n", b"secret"),
        (b"secret\n\n", b"secret\n"),  # only one line ending is removed
        (b"secret\r", b"secret\r"),
        (b"sec\x00ret\xff\n", b"sec\x00ret\xff"),
    ],
)
def test_key_file_strips_one_line_ending(tmp_path: Path, content: bytes, key: bytes) -> None:
    assert load_key(None, write(tmp_path, content)).key == key


def test_key_file_of_32_bytes_is_also_a_psk(tmp_path: Path) -> None:
    raw = bytes(range(31)) + b"\n"  # a random key may end in a newline byte
    loaded = load_key(None, write(tmp_path, raw))
    assert loaded.psk == raw
    assert load_key(None, write(tmp_path, b"x" * 33)).psk is None


def test_unreadable_key_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(KeyFileError) as info:
        parse_client_args(["h", "1", "--key-file", missing])
    assert str(info.value) == f"Cannot read key file {missing}: No such file or directory"


def test_empty_keys_are_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert usage_error(parse_server_args, ["1", "--key-file", write(tmp_path, b"\n")]) == (
        "Empty key from --key-file"
    )
    monkeypatch.setenv("SECUREMSG_KEY", "")
    assert usage_error(parse_server_args, ["1"]) == "Empty key from SECUREMSG_KEY"


def test_env_key_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECUREMSG_KEY", "k\u00e9y")
    assert parse_client_args(["h", "1"]).key.key == "k\u00e9y".encode()


def test_key_never_in_repr() -> None:
    config = parse_server_args(["1", "--key", "hunter2"])
    assert "hunter2" not in repr(config)


# --- secure mode --------------------------------------------------------------


def test_noise_refuses_the_default_key(monkeypatch: pytest.MonkeyPatch) -> None:
    message = usage_error(parse_server_args, ["1", "--cipher", "noise"])
    assert "default key" in message and "public" in message
    assert "default key" in usage_error(parse_client_args, ["h", "1", "--cipher", "noise"])
    # The default key given explicitly is no better.
    assert "default key" in usage_error(
        parse_server_args, ["1", "--cipher", "noise", "--key", "MY_SECRET_KEY"]
    )
    monkeypatch.setenv("SECUREMSG_KEY", "MY_SECRET_KEY")
    assert "default key" in usage_error(parse_server_args, ["1", "--cipher", "noise"])


def test_noise_with_a_real_key() -> None:
    config = parse_server_args(["1", "--cipher", "noise", "--key", "correct horse"])
    assert config.cipher == "noise" and config.key.key == b"correct horse"
