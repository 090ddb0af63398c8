"""Stream framing (RFC 6587): any split of a stream gives the same frames; junk costs only itself."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trailseal.receivers.framing import LF, NUL, OCTET, Framer

messages = st.lists(
    st.binary(min_size=1, max_size=60).map(lambda b: b"<13>1 " + b.replace(b"\n", b" ")),
    min_size=1,
    max_size=12,
)


def octets(frames: list[bytes]) -> bytes:
    return b"".join(str(len(f)).encode() + b" " + f for f in frames)


def feed_in_pieces(data: bytes, cuts: list[int], max_frame: int = 65535) -> tuple[list[bytes], list, Framer]:
    framer = Framer(max_frame)
    frames, rejected, last = [], [], 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]:
        got, bad = framer.feed(data[last:cut])
        frames += got
        rejected += bad
        last = cut
    got, bad = framer.close()
    return frames + got, rejected + bad, framer


@given(messages, st.lists(st.integers(min_value=0), max_size=10))
def test_octet_counting_is_independent_of_how_the_stream_is_cut(frames, cuts):
    got, rejected, framer = feed_in_pieces(octets(frames), cuts)
    assert got == frames and rejected == [] and framer.mode == OCTET


@given(
    st.lists(
        st.text(alphabet="abc <>:é", min_size=1, max_size=30).map(lambda t: ("<13>" + t).encode()),
        min_size=1,
        max_size=10,
    ),
    st.lists(st.integers(min_value=0), max_size=10),
    st.booleans(),
)
def test_lf_and_nul_framing(frames, cuts, nul):
    end = b"\x00" if nul else b"\n"
    got, rejected, framer = feed_in_pieces(b"".join(f + end for f in frames), cuts)
    assert [g.strip() for g in got] == [f.strip() for f in frames if f.strip()] and rejected == []
    assert framer.mode == (NUL if nul else LF)


@given(
    messages,
    st.binary(max_size=40).map(lambda b: bytes(c for c in b if c not in b"0123456789< \t\r\n\x00")),
    st.integers(min_value=0, max_value=11),
)
def test_junk_between_frames_costs_only_itself(frames, junk, where):
    where %= len(frames)
    junk = b"x" + junk  # never empty, never a length
    data = octets(frames[: where + 1]) + junk + octets(frames[where + 1 :])
    got, rejected, _ = feed_in_pieces(data, [len(data) // 3])
    assert got == frames
    assert len(rejected) == 1 and rejected[0][2] == len(junk) and "bad octet count" in rejected[0][0]


@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=6))
def test_any_bytes_are_framed_or_rejected_never_raised(data, cuts):
    got, rejected, _ = feed_in_pieces(data, cuts, max_frame=100)
    assert all(len(frame) <= 100 for frame in got)
    assert all(reason and size > 0 for reason, _, size in rejected)


def test_limits_and_truncation():
    framer = Framer(max_frame=10)
    frames, rejected = framer.feed(b"11 <13>1 abcde" + b"5 <13>x")
    assert frames == [b"<13>x"] and "exceeds the limit of 10" in rejected[0][0]
    assert framer.feed(b"9 <13>1 ab") == ([], [])
    frames, rejected = framer.close()
    assert (
        frames == [] and rejected[0][0].startswith("truncated frame") and rejected[0][2] == len(b"9 <13>1 ab")
    )
    lines = Framer(max_frame=10)
    assert lines.feed(b"<1>ok\n<1>" + b"y" * 20) == ([b"<1>ok"], [])
    frames, rejected = lines.feed(b"zz\n<1>next\n")
    assert frames == [b"<1>next"] and rejected[0][2] == 25 and "without a terminator" in rejected[0][0]
    assert Framer().close() == ([], [])
    unfinished = Framer()
    unfinished.feed(b"<1>no newline at the end")
    assert unfinished.close(clean=True) == ([b"<1>no newline at the end"], [])
