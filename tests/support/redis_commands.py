"""Reading packed Redis commands back (tests that look at what a round trip sends)."""

from __future__ import annotations

import hiredis


def unpack_commands(payload: bytes) -> list[tuple]:
    """The commands of a packed payload (RESP arrays of bulk strings), as tuples with the
    command name as text and the arguments as bytes."""
    reader = hiredis.Reader()
    reader.feed(payload)
    commands = []
    while (parts := reader.gets()) is not False:
        commands.append((parts[0].decode(), *parts[1:]))
    return commands
