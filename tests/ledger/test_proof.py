"""tlog-proof: the C2SP example's shape, and proofs from a real tree verified offline."""

import base64

import pytest

from trailseal.ledger import (
    Checkpoint,
    CheckpointError,
    LedgerError,
    NoteError,
    ProofError,
    Signer,
    TreeState,
    format_proof,
    generate,
    inclusion_proof,
    leaf_hash,
    parse_proof,
    sign,
    tile_read_hashes,
    verify_proof,
)

ORIGIN = "trailseal.example/default"

# The example of C2SP tlog-proof.md (C2SP/C2SP @ 5ba5ee83, CC-BY-4.0); its signatures are elided there.
SPEC_EXAMPLE = """c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

\u2014 example.com/fancylog hI2DJw[...]1roloI=
"""


@pytest.fixture(scope="module")
def log():
    """A signed log of 1000 entries: (entries, signer, signed checkpoint, tiles, size)."""
    entries = [f'{{"id":"{i}","action":"user.login"}}'.encode() for i in range(1000)]
    state, tiles = TreeState.empty(), {}
    state.append([leaf_hash(e) for e in entries])
    tiles.update({(level, index): data for level, index, data in state.take_dirty_tiles()})
    signer = Signer.from_skey(generate(ORIGIN)[0])
    signed = sign(Checkpoint(ORIGIN, state.size, state.root()).body(), signer)
    return entries, signer, signed, tiles


def _proof_text(log, index: int, extra: bytes | None = None) -> str:
    """Return the tlog-proof of entry index in the log fixture."""
    entries, _, signed, tiles = log
    read_hashes = tile_read_hashes(len(entries), lambda level, n, width: tiles[(level, n)][: width * 32])
    return format_proof(index, inclusion_proof(index, len(entries), read_hashes), signed, extra)


def test_parse_spec_example():
    proof = parse_proof(SPEC_EXAMPLE)
    assert proof.index == 73894
    assert len(proof.hashes) == 5 and all(len(h) == 32 for h in proof.hashes)
    assert proof.extra == base64.b64decode("YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ")
    assert proof.checkpoint_note.startswith("example.com/fancylog\n109482\n")
    assert format_proof(proof.index, list(proof.hashes), proof.checkpoint_note, proof.extra) == SPEC_EXAMPLE


@pytest.mark.parametrize("index", [0, 1, 255, 256, 511, 998, 999])
def test_proofs_verify_offline(log, index):
    entries, signer, signed, _ = log
    text = _proof_text(log, index, extra=b"ctx")
    checkpoint = verify_proof(text, entries[index], [signer.verifier()], origin=ORIGIN)
    assert (checkpoint.origin, checkpoint.size) == (ORIGIN, 1000)
    parsed = parse_proof(text)
    assert (parsed.index, parsed.extra, parsed.checkpoint_note) == (index, b"ctx", signed)
    assert text.startswith(f"c2sp.org/tlog-proof@v1\nextra Y3R4\nindex {index}\n")


def test_tampering_is_caught(log):
    entries, signer, signed, _ = log
    verifier = signer.verifier()
    text = _proof_text(log, 7)
    with pytest.raises(ProofError, match="does not lead to the root"):
        verify_proof(text, entries[8], [verifier])
    with pytest.raises(ProofError):
        verify_proof(text.replace("index 7\n", "index 6\n"), entries[7], [verifier])
    first_hash = text.split("\n")[2]
    flipped = ("B" if first_hash[0] == "A" else "A") + first_hash[1:]
    with pytest.raises(ProofError):
        verify_proof(text.replace(first_hash, flipped), entries[7], [verifier])
    with pytest.raises(NoteError):
        verify_proof(text.replace("\n1000\n", "\n1001\n"), entries[7], [verifier])
    with pytest.raises(NoteError):
        verify_proof(text, entries[7], [Signer.from_skey(generate(ORIGIN)[0]).verifier()])
    with pytest.raises(CheckpointError):
        verify_proof(text, entries[7], [verifier], origin="trailseal.example/other")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"),
        lambda t: t.replace("index 7", "index 07"),
        lambda t: t.replace("index 7", "index -7"),
        lambda t: t.replace("index 7", "idx 7"),
        lambda t: t.replace("index 7\n", "index 7\nAAAA\n"),
        lambda t: t.replace("index 7\n", "index 7\n!!!!\n"),
        lambda t: t.replace("index 7\n", "extra AA==\nextra AA==\nindex 7\n"),
        lambda t: t.replace("index 7\n", "index 7\nextra AA==\n"),
        lambda t: t.split("\n\n")[0],
        lambda t: t.split("\n\n")[0] + "\n\n",
    ],
)
def test_malformed_proofs_are_rejected(log, mutate):
    with pytest.raises(ProofError):
        parse_proof(mutate(_proof_text(log, 7)))


def test_format_proof_rejects_bad_input(log):
    signed = log[2]
    with pytest.raises(ProofError):
        format_proof(-1, [], signed)
    with pytest.raises(ProofError):
        format_proof(0, [b"short"], signed)
    with pytest.raises(ProofError):
        format_proof(0, [], signed.rstrip("\n"))


def test_every_ledger_error_is_a_value_error():
    for error in (ProofError, NoteError, CheckpointError):
        assert issubclass(error, LedgerError) and issubclass(error, ValueError)
