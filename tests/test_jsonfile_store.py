"""The JSON-file store's own promises: atomic files, readable layout, crash safety."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from authgate.stores import open_store
from authgate.stores.jsonfile import JSONFileStore
from authgate.users import Group, User


def test_files_are_plain_json_without_leftovers(tmp_path: Path) -> None:
    store = open_store(f"json:///{tmp_path / 'db'}")
    assert isinstance(store, JSONFileStore)
    store.create_user(User.new("alice", roles=["viewer"], password_hash="$argon2id$x"))
    store.put_group(Group.new("lab", ["plants:read"]))
    users = json.loads((tmp_path / "db" / "users.json").read_text())
    assert users["alice"]["roles"] == ["viewer"]
    groups = json.loads((tmp_path / "db" / "groups.json").read_text())
    assert groups["lab"]["permissions"] == ["plants:read"]
    assert sorted(p.name for p in (tmp_path / "db").iterdir()) == [
        ".authgate.lock",
        "groups.json",
        "users.json",
    ]


def test_a_crash_during_a_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JSONFileStore(tmp_path / "db")
    store.create_user(User.new("alice"))
    before = (tmp_path / "db" / "users.json").read_bytes()

    def crash(*args: Any) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        store.create_user(User.new("bob"))
    monkeypatch.undo()
    assert (tmp_path / "db" / "users.json").read_bytes() == before
    assert [p.name for p in (tmp_path / "db").iterdir() if p.suffix == ".tmp"] == []
    assert store.get_user("bob") is None
    assert store.get_user("alice") is not None


def test_a_user_written_before_email_verified_reads_as_unverified(tmp_path: Path) -> None:
    store = JSONFileStore(tmp_path / "db")
    made = store.create_user(User.new("alice", email="a@example.com", email_verified=True))
    file = tmp_path / "db" / "users.json"
    users = json.loads(file.read_text())
    del users["alice"]["email_verified"]
    file.write_text(json.dumps(users))
    assert store.get_user("alice") == dataclasses.replace(made, email_verified=False)


def test_a_corrupt_file_is_a_clear_store_error(tmp_path: Path) -> None:
    from authgate.errors import StoreError

    store = JSONFileStore(tmp_path / "db")
    (tmp_path / "db" / "users.json").write_text("{half")
    with pytest.raises(StoreError, match="cannot be read"):
        store.get_user("alice")
