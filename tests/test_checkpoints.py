"""Checkpoints as C2SP signed notes: Go's sumdb/note known answer reproduced byte for byte, and every
way a note can be wrong refused with its reason."""

from __future__ import annotations

import pytest

from lienthong.msglog.checkpoints import (
    Checkpoint,
    NoteError,
    SigningKey,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)
from lienthong.msglog.merkle import leaf_hash, root

# golang.org/x/mod/sumdb/note's example and test vector (seen in its note.go and note_test.go).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_go_s_known_answer_is_reproduced_and_opened() -> None:
    key = SigningKey.parse(GO_SKEY)
    assert key.text() == GO_SKEY
    assert key.verifier() == GO_VKEY
    assert sign_note(GO_TEXT, key) == GO_NOTE  # Ed25519 is deterministic
    assert open_note(GO_NOTE, GO_VKEY) == GO_TEXT


def test_a_checkpoint_round_trips_and_a_changed_one_is_refused() -> None:
    key = SigningKey.generate("lienthong.h56.example/log")
    head = Checkpoint(
        "lienthong.h56.example/log", 3, root([leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")])
    )
    note = sign_checkpoint(head, key)
    assert open_checkpoint(note, key.verifier()) == head
    with pytest.raises(NoteError, match="does not verify: the note was changed"):
        open_checkpoint(note.replace("\n3\n", "\n4\n"), key.verifier())
    other = SigningKey.generate("lienthong.h56.example/log")
    with pytest.raises(NoteError, match="no signature by lienthong.h56.example/log"):
        open_checkpoint(note, other.verifier())


@pytest.mark.parametrize(
    ("note", "said"),
    [
        (GO_TEXT, "no blank line before the signatures"),
        (GO_TEXT + "\nnot a signature\n", "not a signature line"),
        (GO_TEXT + "\n— PeterNeumann ***\n", "not base64"),
        (GO_TEXT + "\n— SomeoneElse AAAAAAAA\n", "no signature by PeterNeumann"),
        ("x" * (1 << 20) + "\n\n— a b\n", "larger than"),
    ],
)
def test_a_note_that_cannot_be_read_says_why(note: str, said: str) -> None:
    with pytest.raises(NoteError, match=said):
        open_note(note, GO_VKEY)


def test_keys_and_checkpoints_that_cannot_be_read_say_why() -> None:
    with pytest.raises(NoteError, match="not a signing key"):
        SigningKey.parse("PeterNeumann+c74f20a3+AYEK")
    with pytest.raises(NoteError, match="id does not match"):
        SigningKey.parse(GO_SKEY.replace("c74f20a3", "00000000"))
    with pytest.raises(NoteError, match="id does not match"):
        open_note(GO_NOTE, GO_VKEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(NoteError, match="three lines"):
        Checkpoint.parse("origin\n3\n")
    with pytest.raises(NoteError, match="not a number"):
        Checkpoint.parse("origin\n03\nAAAA\n")
    with pytest.raises(NoteError, match="not a SHA-256 hash"):
        Checkpoint.parse("origin\n3\nAAAA\n")
