#!/usr/bin/env python3
"""libFuzzer (atheris) target: the configuration loader. Any text either
loads, and then dumps to a file that loads back to the same configuration,
or fails with one ConfigError line that names the field and stays short.
Anything else (another exception, a hang, unbounded memory) is a finding.
Run by scripts/fuzz.sh (make fuzz; a short run in make test)."""

import sys
from dataclasses import replace

import atheris

with atheris.instrument_imports():
    from pylb import config
    from pylb.errors import ConfigError


def one(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        c = config.load_config("(fuzz)", text=text)
    except ConfigError as e:
        message = str(e)
        if "\n" in message or len(message) > 400:
            raise AssertionError(f"not one short line: {message[:1000]!r}") from None
        return
    again = config.load_config("(again)", text=config.dump(c))
    if again != replace(c, path="(again)"):
        raise AssertionError(f"dump does not round-trip: {c} -> {again}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()
