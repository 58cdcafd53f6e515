"""Frames of a captured byte stream, and a test for readable text: what the demo needs to
read a capture beyond the project's package (`securemsg.framing` decodes the frames)."""

from __future__ import annotations

from dataclasses import dataclass

from securemsg.framing import HEADER_LEN, MAX_LENGTH, FrameDecoder
from securemsg.framing import Frame as DecodedFrame


@dataclass(frozen=True)
class Frame:
    """One frame of a captured stream: where it starts in the stream, and its payload."""

    offset: int
    payload: bytes


def split_frames(stream: bytes) -> tuple[list[Frame], bytes]:
    """Split one direction's byte stream into frames; return them and any incomplete tail."""
    decoder = FrameDecoder(MAX_LENGTH)  # a capture is shown whatever the server's limit
    decoder.feed(stream)
    frames: list[Frame] = []
    offset = 0
    while isinstance(event := decoder.next_event(), DecodedFrame):
        frames.append(Frame(offset, event.payload))
        offset += HEADER_LEN + len(event.payload)
    return frames, stream[offset:]


def looks_like_words(data: bytes, threshold: float = 0.75) -> bool:
    """UTF-8 text without control characters, mostly letters, digits and spaces."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if any(ch < " " or "\x7f" <= ch <= "\x9f" for ch in text):
        return False
    return not text or sum(ch.isalnum() or ch == " " for ch in text) / len(text) >= threshold
