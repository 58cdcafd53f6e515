"""Frames of PROTOCOL.md section 1, without any I/O (in the style of h11).

A frame is a 4-byte big-endian length and that many payload bytes.
``encode_frame`` builds one as a single buffer, so a sender writes it with one
call. ``FrameDecoder`` is fed whatever the socket returned and answers, one
event at a time, ``NEED_MORE``, ``Frame(payload)``, ``TooLarge(length)`` or
``TooSmall(length)``. A length outside the limits is reported as soon as the
4 prefix bytes are in, before any of the body is buffered.
"""

from __future__ import annotations

import struct

from .errors import TruncatedFrame

_HEADER = struct.Struct(">I")
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from
HEADER_LEN = _HEADER.size
MAX_LENGTH = 0xFFFFFFFF  # what 4 bytes can express


def encode_frame(payload: bytes) -> bytes:
    """Return the length prefix and ``payload`` in one buffer."""
    return _pack_header(len(payload)) + payload


class NeedMore:
    """Event: the buffered bytes do not hold a whole frame yet."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_MORE"


NEED_MORE = NeedMore()


class Frame:
    """Event: one whole frame."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __repr__(self) -> str:
        return f"Frame({self.payload!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frame) and other.payload == self.payload

    __hash__ = None  # type: ignore[assignment]


class BadLength:
    """Event: a length prefix outside the limits. The decoder is stuck after it."""

    __slots__ = ("length", "limit")

    def __init__(self, length: int, limit: int) -> None:
        self.length = length
        self.limit = limit

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.length}, limit={self.limit})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and (other.length, other.limit) == (  # type: ignore[attr-defined]
            self.length,
            self.limit,
        )

    __hash__ = None  # type: ignore[assignment]


class TooLarge(BadLength):
    """Event: a length prefix above ``limit`` (the maximum frame)."""

    __slots__ = ()


class TooSmall(BadLength):
    """Event: a length prefix below ``limit`` (only when a minimum is set)."""

    __slots__ = ()


Event = NeedMore | Frame | BadLength


class FrameDecoder:
    """Turn a byte stream into frames; feed it bytes, then drain events.

    ``min_frame`` and ``max_frame`` may be changed between frames (secure mode
    expects a 48-byte handshake frame, then transport frames of 17..65535).
    """

    __slots__ = (
        "_data",
        "_failed",
        "_more",
        "_more_len",
        "_pos",
        "frames",
        "max_frame",
        "min_frame",
    )

    def __init__(self, max_frame: int, min_frame: int = 0) -> None:
        self.max_frame = max_frame
        self.min_frame = min_frame
        # Unread bytes are _data[_pos:] followed by the pieces in _more. Most
        # reads hold whole frames: then _data is the received object itself
        # and a frame costs one slice. Pieces of a long frame are joined once,
        # when all of it is in.
        self._data = b""
        self._pos = 0
        self._more: list[bytes] = []
        self._more_len = 0
        self._failed: BadLength | None = None
        self.frames = 0  # whole frames returned so far

    def feed(self, data: bytes) -> None:
        """Add bytes received from the peer (dropped after a bad length)."""
        if self._failed is not None or not data:
            return
        if self._pos == len(self._data) and not self._more:
            self._data = data
            self._pos = 0
        else:
            self._more.append(data)
            self._more_len += len(data)

    def _merge(self) -> bytes:
        data = b"".join([memoryview(self._data)[self._pos :], *self._more])
        self._data = data
        self._pos = 0
        self._more.clear()
        self._more_len = 0
        return data

    def next_event(self) -> Event:
        """Return the next event; ``NEED_MORE`` when the buffer is drained."""
        if self._failed is not None:
            return self._failed
        data = self._data
        pos = self._pos
        if len(data) - pos < HEADER_LEN:
            if len(data) - pos + self._more_len < HEADER_LEN:
                return NEED_MORE
            data = self._merge()
            pos = 0
        (length,) = _unpack_header(data, pos)
        if length > self.max_frame:
            self._failed = TooLarge(length, self.max_frame)
            return self._failed
        if length < self.min_frame:
            self._failed = TooSmall(length, self.min_frame)
            return self._failed
        end = pos + HEADER_LEN + length
        if len(data) < end:
            if len(data) + self._more_len < end:
                return NEED_MORE  # wait for the rest without copying anything
            data = self._merge()
            pos = 0
            end = HEADER_LEN + length
        self._pos = end
        self.frames += 1
        frame = Frame(data[pos + HEADER_LEN : end])
        if end == len(data) and not self._more:
            self._data = b""  # hold no copy of a large frame while the peer is idle
            self._pos = 0
        return frame

    @property
    def buffered(self) -> int:
        """Bytes held that do not form a whole frame yet (after draining)."""
        return len(self._data) - self._pos + self._more_len

    def pending_length(self) -> int | None:
        """The payload length of the partial frame buffered, once its 4 prefix bytes are in."""
        if self.buffered < HEADER_LEN or self._failed is not None:
            return None
        if len(self._data) - self._pos < HEADER_LEN:
            self._merge()  # the prefix is split over pieces; only a few bytes are buffered
        (length,) = _unpack_header(self._data, self._pos)
        return length

    def check_eof(self) -> None:
        """Call when the peer closed: raise ``TruncatedFrame`` if inside a frame.

        The caller drains ``next_event`` first; what is left is one partial
        frame (or nothing, a clean end).
        """
        have = self.buffered
        if have == 0 or self._failed is not None:
            return
        if have < HEADER_LEN:
            raise TruncatedFrame("length", have, HEADER_LEN)
        (length,) = _unpack_header(self._merge())
        raise TruncatedFrame("payload", have - HEADER_LEN, length)
