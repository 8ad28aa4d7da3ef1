"""The Redis store's key names, in one place (see `logic` for the layout they form)."""

from __future__ import annotations

import re

from ...users import session_tag, shard_of

__all__ = ["Keys"]

_HEX8 = re.compile(r"[0-9a-f]{8}")


class Keys:
    """The key names of the store under one prefix.

    ``{prefix}:...`` are the store's own keys; ``{prefix:1a2b}:...`` the keys of the
    users whose shard (`shard_of`) is ``1a2b``.  A ``base`` below is the part up to and
    including the colon after the hash tag, which scripts extend themselves."""

    __slots__ = ("base", "channel", "groups", "layout", "names", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        #: The store's own keys start here.
        self.base = "{" + prefix + "}:"
        #: The list of usernames (members ``"name id"``) for the admin listing.
        self.names = self.base + "names"
        self.groups = self.base + "groups"
        self.layout = self.base + "layout"
        #: Where every change that can end a session check is announced (username).
        self.channel = self.base + "changes"

    def shard(self, tag: str) -> str:
        """The base of shard `tag`."""
        return "{" + self.prefix + ":" + tag + "}:"

    def of_user(self, username: str) -> str:
        """The base of `username`'s keys."""
        return self.shard(shard_of(username))

    def sessions(self, tag: str) -> str:
        """The hash of the sessions whose ids begin with `tag` (eight hex digits): in
        practice one user's (two usernames whose `session_tag` agree share it)."""
        return f"{self.shard(tag[:4])}ss:{tag}"

    def sessions_of(self, username: str) -> str:
        """The hash `username`'s sessions are kept in, whatever their ids."""
        return self.sessions(session_tag(username))

    @staticmethod
    def _named_tag(session_id: str) -> str:
        head = session_id[:8]
        return head if _HEX8.fullmatch(head) else session_tag(session_id)

    def sessions_named_by(self, session_id: str) -> str:
        """The hash a session id names: by its first eight hex digits
        (`new_session_id`); an id of another shape names the tag of the whole id."""
        return self.sessions(self._named_tag(session_id))

    def forward(self, session_id: str) -> str:
        """Beside the hash a session id names: the owner of a session kept elsewhere
        (an id that does not begin with its owner's tag)."""
        return f"{self.shard(self._named_tag(session_id)[:4])}sm:{session_id}"

    def user_and_sessions(self, username: str) -> tuple[str, str]:
        """`user` and `sessions_of` for `username`, hashing it once (the session check's
        two keys)."""
        tag = session_tag(username)
        return f"{self.shard(tag[:4])}u:{username}", self.sessions(tag)

    def user(self, username: str) -> str:
        return f"{self.of_user(username)}u:{username}"

    def user_id(self, user_id: str) -> str:
        """Id to username, under the id's own shard."""
        return f"{self.shard(shard_of(user_id))}uid:{user_id}"

    def group(self, name: str) -> str:
        return f"{self.base}g:{name}"

    def counter(self, key: str) -> str:
        """A counter ``kind:subject`` (``login-failures:alice``) is filed under its
        subject's shard: a user's counters beside the user."""
        return f"{self.shard(shard_of(key.partition(':')[2] or key))}c:{key}"

    @staticmethod
    def index_entry(username: str, user_id: str) -> str:
        """A member of the username list: the name, a space (below every character a
        username may hold, so the list stays in name order), the id."""
        return f"{username} {user_id}"
