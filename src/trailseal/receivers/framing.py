"""Framing of one syslog stream (TCP or TLS), detected per connection from its first byte.

- a digit: RFC 6587 §3.4.1 octet counting (``LEN SP MSG``), the only framing of RFC 5425 (TLS);
- anything else: non-transparent framing (RFC 6587 §3.4.2), each message ending with LF, or with
  NUL when a NUL comes before the first LF (Python's ``SysLogHandler`` over TCP ends messages so).

A bad frame never costs the stream its other frames: a length that is not a number, or longer than
``max_frame``, is rejected with the bytes up to the next plausible frame start (``LEN SP <PRI>``);
a message longer than ``max_frame`` without a terminator is rejected up to its terminator; what is
left incomplete when the stream ends is rejected as truncated. Each rejection is (reason, SHA-256 hex,
size) — the bytes themselves are not kept, so an endless bad region costs no memory.
"""

from __future__ import annotations

import hashlib
import re

OCTET, LF, NUL = "octet-counted", "LF", "NUL"
_COUNT = re.compile(rb"([1-9][0-9]{0,9}) ")
_DIGITS = re.compile(rb"[0-9]{1,10}\Z")
_RESYNC = re.compile(rb"(?<![0-9])[1-9][0-9]{0,9} <[0-9]{1,3}>")
_GAP = b" \t\r\n\x00"
HEADER_MAX = 16  # a partial "LEN SP <PRI>" at the end of a buffer is at most this long

Rejected = tuple[str, str, int]


def rejected(reason: str, data: bytes) -> Rejected:
    """A rejection of some bytes: why, their SHA-256 and their length."""
    return reason, hashlib.sha256(data).hexdigest(), len(data)


class Framer:
    """Turn the bytes of one stream into frames, with a reason for every byte it cannot frame."""

    def __init__(self, max_frame: int = 65535):
        self.max_frame = max_frame
        self.mode: str | None = None
        self.buffer = b""
        self.skipped: hashlib._Hash | None = None  # a bad region not yet reported (it may continue)
        self.skipped_size = 0
        self.skip_reason = ""

    def feed(self, data: bytes) -> tuple[list[bytes], list[Rejected]]:
        """Frames complete after ``data``, and the rejections it settled."""
        self.buffer += data
        if self.mode is None and not self._detect():
            return [], []
        if self.mode == OCTET:
            return self._octets()
        return self._terminated()

    def close(self, clean: bool = True) -> tuple[list[bytes], list[Rejected]]:
        """The stream ended. After a clean close, an unterminated LF/NUL message is complete (the close
        ends it); anything else pending is rejected as truncated (or as the bad region it was)."""
        rest, self.buffer = self.buffer.strip(_GAP), b""
        if rest and self.skipped is not None and not rest[:1].isdigit():
            self._skip(rest)  # the end of the bad region that was being skipped
            rest = b""
        settled = self._flush_skipped()
        if not rest:
            return [], settled
        if clean and self.mode in (LF, NUL, None) and len(rest) <= self.max_frame and not rest[:1].isdigit():
            return [rest], settled
        reason = f"truncated frame: the stream ended inside an unfinished {self.mode or 'first'} frame"
        return [], [*settled, rejected(reason, rest)]

    def _detect(self) -> bool:
        """Choose the framing from the first non-blank byte (False while there is none yet)."""
        start = self.buffer.lstrip(_GAP)
        if not start:
            return False
        if start[:1].isdigit():
            self.mode = OCTET
            return True
        lf, nul = start.find(b"\n"), start.find(b"\x00")
        if lf < 0 and nul < 0 and len(start) < self.max_frame:
            return False
        self.mode = NUL if nul >= 0 and (lf < 0 or nul < lf) else LF
        return True

    def _octets(self) -> tuple[list[bytes], list[Rejected]]:
        frames: list[bytes] = []
        settled: list[Rejected] = []
        buf, pos, size = self.buffer, 0, len(self.buffer)
        while pos < size:
            if buf[pos] in _GAP:
                pos += 1
                continue
            match = _COUNT.match(buf, pos)
            if match is None or int(match.group(1)) > self.max_frame:
                if match is None and _DIGITS.match(buf, pos):
                    break  # a length still arriving
                pos, found = self._skip_to_frame(buf, pos, match)
                if not found:
                    break
                continue
            end = match.end() + int(match.group(1))
            if end > size:
                break
            settled.extend(self._flush_skipped())
            frames.append(buf[match.end() : end])
            pos = end
        self.buffer = buf[pos:]
        return frames, settled

    def _skip_to_frame(self, buf: bytes, pos: int, match: re.Match | None) -> tuple[int, bool]:
        """Skip a bad length to the next plausible frame start (or near the end of what arrived so far);
        the skipped bytes are one rejection."""
        if self.skipped is None:
            self.skip_reason = (
                f"frame of {match.group(1).decode()} octets exceeds the limit of {self.max_frame}"
                if match
                else f"bad octet count {buf[pos : pos + 12]!r}"
            )
        found = _RESYNC.search(buf, match.end() if match else pos + 1)
        end = found.start() if found else max(pos + 1, len(buf) - HEADER_MAX)
        self._skip(buf[pos:end])
        return end, found is not None

    def _skip(self, data: bytes) -> None:
        if self.skipped is None:
            self.skipped, self.skipped_size = hashlib.sha256(), 0
        self.skipped.update(data)
        self.skipped_size += len(data)

    def _flush_skipped(self) -> list[Rejected]:
        if self.skipped is None:
            return []
        settled = [(self.skip_reason, self.skipped.hexdigest(), self.skipped_size)]
        self.skipped = None
        return settled

    def _terminated(self) -> tuple[list[bytes], list[Rejected]]:
        end_byte = b"\n" if self.mode == LF else b"\x00"
        head, sep, rest = self.buffer.rpartition(end_byte)
        frames: list[bytes] = []
        settled: list[Rejected] = []
        if sep:
            for part in head.split(end_byte):
                self._take(part, frames, settled)
        self.buffer = rest
        if len(rest) > self.max_frame:  # no terminator in sight: reject what came so far
            self._take(rest, frames, settled, unterminated=True)
            self.buffer = b""
        return frames, settled

    def _take(
        self, part: bytes, frames: list[bytes], settled: list[Rejected], unterminated: bool = False
    ) -> None:
        """One terminated message, or the rest of an over-long one (joined to what was skipped)."""
        if self.skipped is not None or unterminated or len(part) > self.max_frame:
            self._skip(part)
            self.skip_reason = f"message exceeds {self.max_frame} bytes without a terminator"
            if not unterminated:
                settled.extend(self._flush_skipped())
            return
        part = part.rstrip(b"\r\n\x00")
        if part.strip():
            frames.append(part)
