"""Signed notes: the golang.org/x/mod and C2SP vectors, and the rules of the spec."""

import base64
import hashlib
import json

import pytest

from trailseal.ledger import NoteError, Signer, Verifier, generate, key_id, open_note, sign

from .vectors import MERKLE_DIR

TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"


@pytest.fixture(scope="module")
def vectors(merkle_dir):
    """The signed-note vectors."""
    return json.loads((merkle_dir / "signed-note-vectors.json").read_text())


@pytest.fixture(scope="module")
def verifiers(vectors):
    """Verifier of every key in the vectors, by name."""
    return {name: Verifier.from_vkey(key["vkey"]) for name, key in vectors["keys"].items()}


@pytest.fixture(scope="module")
def peter(vectors):
    """The one signer key in the vectors."""
    return Signer.from_skey(vectors["keys"]["PeterNeumann"]["skey"])


def _open_vectors() -> list:
    """Return the open vectors, read at collection time."""
    path = MERKLE_DIR / "signed-note-vectors.json"
    return json.loads(path.read_text())["open"] if path.exists() else [{"desc": "MISSING", "msg": ""}]


def test_key_ids_and_key_texts_round_trip(vectors, verifiers):
    for name, key in vectors["keys"].items():
        v = verifiers[name]
        _, id_hex, pub64 = key["vkey"].split("+", 2)
        assert v.name == name
        assert v.key_id.hex() == id_hex == key_id(name, base64.b64decode(pub64)[1:]).hex()
        assert v.vkey == key["vkey"]
    expected = hashlib.sha256(b"PeterNeumann\n\x01" + verifiers["PeterNeumann"].public_key).digest()[:4]
    assert verifiers["PeterNeumann"].key_id == expected


def test_signer_key_matches_its_verifier_key(vectors, peter):
    assert peter.skey == vectors["keys"]["PeterNeumann"]["skey"]
    assert peter.verifier().vkey == vectors["keys"]["PeterNeumann"]["vkey"]
    assert "PRIVATE" not in repr(peter)


def test_sign_vector_byte_for_byte(vectors):
    for case in vectors["sign"]:
        assert sign(case["text"], [Signer.from_skey(case["skey"])]) == case["want"]


@pytest.mark.parametrize("case", _open_vectors(), ids=lambda c: c["desc"])
def test_open_vector(case, verifiers):
    known = [verifiers[name] for name in case["trusted"]]
    if case["wantErr"]:
        with pytest.raises(NoteError):
            open_note(case["msg"], known)
        return
    note = open_note(case["msg"], known)
    assert [v.name for v in note.verified_by] == case["wantVerified"]
    assert case["msg"].startswith(note.text + "\n\u2014 ")
    assert "".join(sig.line() for sig in note.sigs) == case["msg"][len(note.text) + 1 :]


def test_unknown_signatures_are_kept_but_not_trusted(vectors, verifiers):
    msg = vectors["open"][0]["msg"]
    note = open_note(msg.encode(), [verifiers["PeterNeumann"]])
    assert note.text == TEXT
    assert [s.name for s in note.sigs] == ["PeterNeumann", "EnochRoot"]
    assert note.verified_by == (verifiers["PeterNeumann"],)


def test_invalid_utf8_is_malformed(vectors, verifiers):
    with pytest.raises(NoteError, match="UTF-8"):
        open_note(b"\xff" + vectors["sign"][0]["want"].encode(), [verifiers["PeterNeumann"]])


def test_generated_keys_sign_and_verify():
    skey, vkey = generate("trailseal.example/default")
    signer, verifier = Signer.from_skey(skey), Verifier.from_vkey(vkey)
    assert skey.startswith("PRIVATE+KEY+trailseal.example/default+")
    assert signer.verifier() == verifier
    msg = sign("hello\n\nworld\n", signer)
    assert open_note(msg, verifier).text == "hello\n\nworld\n"
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(msg.replace("world", "w0rld"), verifier)
    other = Verifier.from_vkey(generate("trailseal.example/default")[1])
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(msg, other)


def test_known_key_with_a_bad_signature_rejects_the_whole_note():
    a, b = Signer.from_skey(generate("a.example")[0]), Signer.from_skey(generate("b.example")[0])
    good = sign("text\n", [a])
    forged = good + sign("other\n", [b]).split("\n\n", 1)[1]
    with pytest.raises(NoteError, match="invalid signature for key b.example"):
        open_note(forged, [a.verifier(), b.verifier()])
    assert [v.name for v in open_note(forged, [a.verifier()]).verified_by] == ["a.example"]


def test_sixteen_signatures_are_accepted():
    signers = [Signer.from_skey(generate(f"witness{i}.example")[0]) for i in range(16)]
    note = open_note(sign("checkpoint\n", signers), [s.verifier() for s in signers])
    assert len(note.verified_by) == 16


def test_ambiguous_verifiers_are_rejected(peter):
    v = peter.verifier()
    twin = Verifier(v.name, v.key_id, bytes(32))
    with pytest.raises(NoteError, match="ambiguous"):
        open_note(sign(TEXT, peter), [v, twin])
    assert open_note(sign(TEXT, peter), [v, v]).verified_by == (v,)


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",
        "PeterNeumann+c74f20a3",
        "PeterNeumann",
    ],
)
def test_malformed_verifier_keys_are_rejected(vkey):
    with pytest.raises(NoteError):
        Verifier.from_vkey(vkey)


@pytest.mark.parametrize(
    "skey",
    [
        "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+Peter+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEYS+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AoEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    ],
)
def test_malformed_signer_keys_are_rejected(skey):
    with pytest.raises(NoteError):
        Signer.from_skey(skey)


@pytest.mark.parametrize("text", ["no final newline", "tab\there\n", "nul\x00\n", "\ud800\n"])
def test_sign_rejects_texts_that_cannot_be_notes(text, peter):
    with pytest.raises(NoteError):
        sign(text, [peter])


def test_sign_needs_a_signer():
    with pytest.raises(NoteError, match="at least one signer"):
        sign(TEXT, [])


@pytest.mark.parametrize(
    "tail",
    [
        "\u2014 PeterNeumann  x08go\n",
        "\u2014 PeterNeumann\n",
        "\u2014 PeterNeumann AAAA\n",
        "- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
        "\u2014 Peter+Neumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
        "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM\n",
    ],
)
def test_malformed_signature_lines_are_rejected(tail, vectors, verifiers):
    signed = vectors["sign"][0]["want"]
    assert open_note(signed, [verifiers["PeterNeumann"]]).text == TEXT
    with pytest.raises(NoteError, match="malformed|base64"):
        open_note(signed + tail, [verifiers["PeterNeumann"]])
