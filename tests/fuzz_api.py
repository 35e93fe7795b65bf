#!/usr/bin/env python3
"""libFuzzer (atheris) target: the API's request validation. Any bytes,
parsed as one of the requests that change the appliance (protobuf wire
format), are either validated into the domain's objects or refused with a
pylb error whose message is one short line: never another exception.
Run by scripts/fuzz.sh (make fuzz; a short run in make test)."""

import sys

import atheris

with atheris.instrument_imports():
    from google.protobuf.message import DecodeError
    from pylb import server
    from pylb.errors import PylbError
    from pylb.v1 import pylb_pb2 as pb

CHECKS = (
    (pb.Service, server._service),
    (pb.Vip, server._vip),
    (pb.ServiceKey, server._key),
    (pb.SetBackendRequest, server._backend),
    (pb.Route, server._route),
    (pb.Neighbour, server._neighbour),
    (pb.Timeouts, server._timeouts),
)


def one(data: bytes) -> None:
    if not data:
        return
    kind, parse = CHECKS[data[0] % len(CHECKS)]
    try:
        request = kind.FromString(data[1:])
    except DecodeError:
        return
    try:
        parse(request)
    except PylbError as e:
        message = str(e)
        if "\n" in message or len(message) > server.MAX_MESSAGE:
            raise AssertionError(f"not one short line: {message[:1000]!r}") from None


if __name__ == "__main__":
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()
