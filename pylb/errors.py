"""pylb's exception types: one per outcome an operator or a client must handle."""

from __future__ import annotations


def one_line(text: str, limit: int = 400) -> str:
    """An error message as one line of at most `limit` characters: what a
    caller echoes (a file's text, a request's field) cannot break it."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit - 3] + "..."


class PylbError(Exception):
    """Base of every error pylb raises on purpose."""


class InvalidArgument(PylbError):
    """The input is wrong; the message says what to fix."""


class NotFound(PylbError):
    """The named object does not exist."""


class AlreadyExists(PylbError):
    """An object with that identity already exists."""


class CapacityExhausted(PylbError):
    """A fixed-size table or pool is full."""


class FailedPrecondition(PylbError):
    """The request is valid but the appliance's state does not allow it (e.g.
    deleting the connected route of a port address)."""


class DataplaneError(PylbError):
    """The dataplane or DPDK failed in a way the input cannot explain."""


class PortError(DataplaneError):
    """A port could not be probed, configured or started."""


class FileError(InvalidArgument):
    """A YAML file is invalid: names the file, the line, the key and what is expected."""

    def __init__(self, path: str, key: str, expected: str, line: int | None = None):
        where = f"{path}:{line}: " if line else f"{path}: " if path else ""
        super().__init__(one_line(f"{where}{key}: {expected}"))
        self.path, self.key, self.expected, self.line = path, key, expected, line


class ProfileError(FileError):
    """A hardware profile is invalid."""


class ConfigError(FileError):
    """A configuration (the desired services, routes, ...) is invalid."""
