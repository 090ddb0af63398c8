"""Checkpoints: the C2SP and Go examples, and strict parsing."""

import json

import pytest

from trailseal.ledger import (
    Checkpoint,
    CheckpointError,
    NoteError,
    Signer,
    generate,
    leaf_hash,
    open_checkpoint,
    parse_checkpoint,
    sign,
)

ROOT = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="


@pytest.fixture(scope="module")
def examples(merkle_dir):
    """The checkpoint examples of the signed-note vectors."""
    return json.loads((merkle_dir / "signed-note-vectors.json").read_text())["checkpoint_examples"]


def test_c2sp_example(examples):
    ex = examples[0]
    cp = parse_checkpoint(ex["body"])
    assert (cp.origin, cp.size, cp.root, cp.extensions) == (ex["origin"], ex["size"], cp.root, ())
    assert cp.body() == ex["body"]
    assert len(cp.root) == 32


def test_go_tree_example(examples):
    cp = parse_checkpoint(examples[1]["body"])
    assert (cp.origin, cp.size, cp.root) == ("go.sum database tree", 123456789012, leaf_hash(b"hello world"))
    assert cp.body() == examples[1]["body"]


def test_extension_lines_round_trip():
    body = f"example.com/log\n5\n{ROOT}\next one\nx\n"
    cp = parse_checkpoint(body)
    assert cp.extensions == ("ext one", "x")
    assert cp.body() == body


@pytest.mark.parametrize(
    "body",
    [
        f"example.com/log\n5\n{ROOT}",
        f"example.com/log\n5\n{ROOT}\n\n",
        f"example.com/log\n5\n{ROOT}\nok\n\n",
        f"\n5\n{ROOT}\n",
        "example.com/log\n5\n",
        f"example.com/log\n05\n{ROOT}\n",
        f"example.com/log\n+5\n{ROOT}\n",
        f"example.com/log\n-5\n{ROOT}\n",
        f"example.com/log\n 5\n{ROOT}\n",
        f"example.com/log\n1_000\n{ROOT}\n",
        f"example.com/log\n\u0665\n{ROOT}\n",
        f"example.com/log\n\n{ROOT}\n",
        f"example.com/log\n9223372036854775808\n{ROOT}\n",
        f"example.com/log\n{'9' * 5000}\n{ROOT}\n",
        f"example.com/log\n5\n{ROOT[:-2]}=\n",
        f"example.com/log\n5\n{ROOT[:-1]}\n",
        f"example.com/log\n5\n{ROOT[:-2]}J=\n",
        "example.com/log\n5\nAAAA\n",
        f"example.com/log\r\n5\n{ROOT}\n",
    ],
)
def test_parse_rejects_malformed_bodies(body):
    with pytest.raises(CheckpointError):
        parse_checkpoint(body)


@pytest.mark.parametrize(
    "args",
    [
        ("", 1, bytes(32)),
        ("a\nb", 1, bytes(32)),
        ("log", -1, bytes(32)),
        ("log", 1, bytes(31)),
        ("log", 1, bytes(32), ("",)),
    ],
)
def test_checkpoint_rejects_values_it_cannot_write(args):
    with pytest.raises(CheckpointError):
        Checkpoint(*args)


def test_open_checkpoint_needs_the_origin_key():
    log = Signer.from_skey(generate("example.com/log")[0])
    other = Signer.from_skey(generate("example.com/other")[0])
    body = Checkpoint("example.com/log", 7, bytes(range(32))).body()
    assert open_checkpoint(sign(body, log), [log.verifier()]).size == 7
    assert open_checkpoint(sign(body, [other, log]), [log.verifier()], "example.com/log").size == 7
    with pytest.raises(CheckpointError, match="no verified signature by a key named"):
        open_checkpoint(sign(body, other), [other.verifier()])
    with pytest.raises(CheckpointError, match="want 'example.com/x'"):
        open_checkpoint(sign(body, log), [log.verifier()], "example.com/x")
    with pytest.raises(NoteError):
        open_checkpoint(sign(body, log), [other.verifier()])
