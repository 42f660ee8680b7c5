"""A task's state between commits: the changelog written in several chunks before a commit."""

from __future__ import annotations

from pathlib import Path

from nerve.streams.serde import decode_value, encode_value
from nerve.streams.state import TaskState


def _written(state: TaskState) -> dict[bytes | None, bytes | None]:
    return {key: value for _, key, value in state.changes()}


def test_changes_twice_before_a_commit_write_only_what_changed_since(tmp_path: Path) -> None:
    state = TaskState("0_0", 0, tmp_path / "0_0")
    state.open()
    store = state.store("counts", "svc-counts-changelog")
    store.put("a", 1)
    store.put("b", 1)
    assert _written(state) == {b"a": b"1", b"b": b"1"}
    store.put("b", 2)
    store.put("c", {5: (1, 7)})
    store.delete("a")
    assert _written(state) == {b"b": b"2", b"c": encode_value({5: (1, 7)}), b"a": None}
    assert _written(state) == {}
    state.persist()
    state.close()

    again = TaskState("0_0", 0, tmp_path / "0_0")
    again.store("counts", "svc-counts-changelog")
    again.open()
    kept = again.stores["counts"]
    assert "a" not in kept
    assert kept.get("b") == 2
    assert kept.get("c") == {5: (1, 7)}
    again.close()


def test_a_rollback_after_a_chunk_of_changelog_restores_the_committed_values() -> None:
    state = TaskState("0_0", 0, None)
    store = state.store("counts", "svc-counts-changelog")
    store.put("a", 1)
    list(state.changes())
    state.persist()  # committed: a = 1
    store.put("a", 2)
    store.put("b", 1)
    assert _written(state) == {b"a": b"2", b"b": b"1"}
    state.rollback()
    assert store.get("a") == 1 and "b" not in store
    assert _written(state) == {}
    store.put("a", 3)
    assert _written(state) == {b"a": b"3"}


def test_window_values_are_written_as_the_generic_encoding_writes_them() -> None:
    from nerve.streams.serde import _dumps, to_jsonable

    for value in [{1765000000000: (3, 1765000001234)}, {1: (2.5, "x"), 2: (None, 3)},
                  {1: (True, 2)}, {1: [1, 2]}, {}]:  # fmt: skip
        assert encode_value(value) == _dumps(to_jsonable(value)).encode()
        assert decode_value(encode_value(value)) == value
