"""pylb's exception types: one per outcome an operator or a client must
handle, and (`GRPC_CODES`) the one table that says which gRPC status each
becomes: bad input INVALID_ARGUMENT, missing NOT_FOUND, duplicates
ALREADY_EXISTS, capacity RESOURCE_EXHAUSTED, a state that forbids it
FAILED_PRECONDITION, and faults that are not the caller's INTERNAL."""

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


# Most specific first: the first class an error is an instance of decides.
GRPC_CODES = ((InvalidArgument, "INVALID_ARGUMENT"),
              (NotFound, "NOT_FOUND"),
              (AlreadyExists, "ALREADY_EXISTS"),
              (CapacityExhausted, "RESOURCE_EXHAUSTED"),
              (FailedPrecondition, "FAILED_PRECONDITION"),
              (DataplaneError, "INTERNAL"))


def grpc_code(e: BaseException) -> str:
    """The gRPC status code name of an error (INTERNAL for anything else)."""
    return next((code for cls, code in GRPC_CODES if isinstance(e, cls)), "INTERNAL")
