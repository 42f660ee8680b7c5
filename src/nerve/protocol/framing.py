"""Size-prefixed framing: each Kafka request and response is an int32 length, then the bytes."""

from __future__ import annotations

import struct

_SIZE = struct.Struct(">i")

DEFAULT_MAX_FRAME_BYTES = 100 * 1024 * 1024  # Kafka's socket.request.max.bytes


class FrameTooLargeError(ValueError):
    """A size prefix beyond the limit (or negative): the peer is not speaking Kafka to us."""


class FrameDecoder:
    """Cuts a byte stream into request frames. Feed it bytes; it hands back whole frames.

    Frames are returned as ``bytes`` slices of an internal buffer, so a large produce request is
    copied once from the socket buffer and once into its frame.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._needed = -1  # size of the frame being collected, -1 while reading its prefix

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        pos = 0
        available = len(buffer)
        while True:
            if self._needed < 0:
                if available - pos < 4:
                    break
                (size,) = _SIZE.unpack_from(buffer, pos)
                if size < 0 or size > self.max_frame_bytes:
                    raise FrameTooLargeError(
                        f"frame of {size} bytes exceeds socket.request.max.bytes "
                        f"({self.max_frame_bytes})"
                    )
                self._needed = size
                pos += 4
            if available - pos < self._needed:
                break
            end = pos + self._needed
            frames.append(bytes(buffer[pos:end]))
            pos = end
            self._needed = -1
        if pos:
            del buffer[:pos]
        return frames

    @property
    def buffered(self) -> int:
        return len(self._buffer)
