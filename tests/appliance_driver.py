"""Runs the real appliance (pylb.appliance.run) on a profile and applies
Dataplane API calls read from stdin, one JSON object per line:
{"batch": [{"call": "add_route", "args": [...], "kwargs": {...}}, ...]}. Each
line gets one JSON line back on stdout: {"ok": [results]} or
{"error": "NotFound", "message": "..."}.

This is how the end-to-end tests drive the Python API of a running
appliance; the management plane (gRPC) will submit its calls the same way.
"""
import json
import logging
import queue
import signal
import sys
import threading

from pylb import appliance
from pylb.manager import queue_submitter
from pylb.model import service
from pylb.profile import load_profile


def jsonable(v):
    if isinstance(v, (list, tuple)) or hasattr(v, "__next__"):
        return [jsonable(x) for x in v]
    return v


def call(dp, r: dict):
    """Dataplane.`call`(*args, **kwargs); a service's arguments become its
    spec (model.service), as the binding takes it."""
    args, kwargs = r["args"], dict(r["kwargs"])
    if r["call"] == "add_service":
        sid = kwargs.pop("id", None)
        return dp.add_service(service(*args, **kwargs), id=sid)
    return getattr(dp, r["call"])(*args, **kwargs)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="pylb: %(message)s")
    stop = threading.Event()
    tasks: queue.SimpleQueue = queue.SimpleQueue()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    submit = queue_submitter(tasks, timeout=None)

    def serve():
        for line in sys.stdin:
            reqs = json.loads(line)["batch"]
            try:
                out = {"ok": submit(lambda dp: [jsonable(call(dp, r)) for r in reqs])}
            except Exception as e:  # reported to the caller
                out = {"error": type(e).__name__, "message": str(e)}
            print(json.dumps(out), flush=True)
        stop.set()

    threading.Thread(target=serve, daemon=True).start()
    profile = load_profile(sys.argv[1])
    appliance.run(profile, stop, tasks=tasks, grpc_address=appliance.grpc_default(profile))


if __name__ == "__main__":
    main()
