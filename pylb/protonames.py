"""The API's enums and the model's names (pylb.model), paired once: each
proto value is the model's name upper-cased (METHOD_FULLNAT: fullnat), and
UNSPECIFIED means the model's default (its first name). Used by the gRPC
servicers and by pylbctl."""

from __future__ import annotations

from pylb import model
from pylb.v1 import pylb_pb2 as pb


def _names(enum: str, prefix: str, names: tuple[str, ...]) -> dict[int, str]:
    values = pb.DESCRIPTOR.enum_types_by_name[enum].values_by_name
    out = {values[f"{prefix}_{n.upper()}"].number: n for n in names}
    out[values[f"{prefix}_UNSPECIFIED"].number] = names[0]
    return out


# proto number -> model name
PROTOS = _names("Protocol", "PROTOCOL", model.PROTOS)
METHODS = _names("Method", "METHOD", model.METHODS)
SCHEDULERS = _names("Scheduler", "SCHEDULER", model.SCHEDULERS)
STATES = _names("BackendState", "BACKEND_STATE", model.BACKEND_STATES)
SYN_PROXY = _names("SynProxy", "SYN_PROXY", model.SYN_PROXY_MODES)
PROXY_PROTOCOL = _names("ProxyProtocol", "PROXY_PROTOCOL", model.PROXY_PROTOCOLS)


def numbers(table: dict[int, str]) -> dict[str, int]:
    """model name -> proto number (not UNSPECIFIED)."""
    return {v: k for k, v in table.items() if k != 0}
