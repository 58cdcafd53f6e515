"""Socket helpers (net.py) on loopback."""

from __future__ import annotations

import socket

import pytest
from securemsg import net
from securemsg.errors import ConnectError, ListenError, ResolveError, TimedOut

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("address", "text"),
    [
        (("127.0.0.1", 54321), "127.0.0.1:54321"),
        (("::1", 5, 0, 0), "[::1]:5"),
        (("fe80::1%eth0", 7, 0, 2), "[fe80::1]:7"),
        (("::ffff:127.0.0.1", 9, 0, 0), "[::ffff:127.0.0.1]:9"),
    ],
)
def test_format_peer(address: tuple, text: str) -> None:
    assert net.format_peer(address) == text


def test_format_address() -> None:
    assert net.format_address("localhost", 5000) == "localhost:5000"
    assert net.format_address("::1", 5000) == "[::1]:5000"


def test_listen_on_port_0_then_connect_and_exchange() -> None:
    listener = net.listen("127.0.0.1", 0)
    try:
        port = listener.getsockname()[1]
        assert port != 0
        assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        client = net.connect("127.0.0.1", port, 5)
        server_side, _ = listener.accept()
        with client, server_side:
            assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            net.send_all(client, b"x" * 100_000, 5)
            received = b""
            while len(received) < 100_000:
                received += net.recv_some(server_side, 5)
            assert received == b"x" * 100_000
            client.close()
            assert net.recv_some(server_side, 5) == b""
    finally:
        listener.close()


def test_listen_ipv6() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        listener = net.listen("::1", 0)
    except ListenError:
        pytest.skip("no ::1 on this machine")
    with listener:
        assert listener.family == socket.AF_INET6
        with net.connect("::1", listener.getsockname()[1], 5):
            pass


def test_listen_on_a_busy_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        with pytest.raises(ListenError) as info:
            net.listen("127.0.0.1", busy.getsockname()[1])
        assert info.value.strerror == "Address already in use"


def test_connect_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(ConnectError) as info:
        net.connect("127.0.0.1", port, 5)
    assert info.value.strerror == "Connection refused"


def test_resolve_failure_carries_the_resolver_text() -> None:
    with pytest.raises(ResolveError) as info:
        net.connect("nonexistent.invalid", 1, 5)
    assert info.value.strerror  # e.g. "Name or service not known"


def test_recv_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = net.connect("127.0.0.1", listener.getsockname()[1], 1)
        with client, pytest.raises(TimedOut) as info:
            net.recv_some(client, 1)
        assert info.value.seconds == 1


def test_zero_timeout_means_blocking() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = net.connect("127.0.0.1", listener.getsockname()[1], 0)
        with client:
            assert client.gettimeout() is None
