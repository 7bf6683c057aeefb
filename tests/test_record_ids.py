"""Record ids: random version 4 UUIDs, read from the operating system many at a time."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from multiprocessing.connection import Connection

import pytest

from hub import base
from hub.base import IDS_PER_READ, new_id


def test_an_id_is_a_version_4_uuid_as_str_writes_it() -> None:
    for _ in range(3 * IDS_PER_READ):  # across reads of the randomness
        made = new_id()
        parsed = uuid.UUID(made)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == made


def test_the_marks_are_uuid4s_whatever_the_random_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The version and variant bits set over the bytes read, as `uuid.UUID(version=4)` sets
    them: all ones, all zeros and every byte value in each place."""
    blocks = [bytes([0xFF] * 16), bytes(16), *(bytes([n] * 16) for n in range(256))]
    monkeypatch.setattr(base._RANDOMNESS, "left", iter(blocks))
    for raw in blocks:
        assert new_id() == str(uuid.UUID(bytes=raw, version=4))


def test_ids_do_not_repeat_across_reads_and_threads() -> None:
    made: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        mine = [new_id() for _ in range(2 * IDS_PER_READ)]
        with lock:
            made.extend(mine)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 8 * IDS_PER_READ
    assert len(set(made)) == len(made)


def _ids_in_child(pipe: Connection) -> None:
    pipe.send([new_id() for _ in range(8)])
    pipe.close()


def test_a_forked_process_does_not_make_its_parents_next_ids() -> None:
    new_id()  # this process now holds unread random bytes, which a fork copies
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    child = context.Process(target=_ids_in_child, args=(theirs,))
    child.start()
    from_child = ours.recv()
    child.join(timeout=30)
    assert child.exitcode == 0
    from_parent = [new_id() for _ in range(8)]
    assert not set(from_child) & set(from_parent)
