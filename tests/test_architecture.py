"""The native code's shape (docs/architecture.md): folders by layer, each
including only what lies below it; no packet compares a forwarding method
(each method is one descriptor, l4/method.h)."""
from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "native" / "src"
# Bottom to top; a file may include headers of its own layer and below.
LAYERS = {"core": 0, "l3": 1, "l4": 2, "l4/method": 2, "l4/defence": 2, "path": 3, "ctl": 4}
# No include runs up (L3's "packet too big" for a translated reply, whose
# source is a service's address, goes to L4 through dp->service_error_in).
UPWARD: set = set()
METHOD_COMPARE = re.compile(r"[=!]=\s*PYLB_L4_(NAT|FULLNAT|DR|TUNNEL)\b|"
                            r"\bPYLB_L4_(NAT|FULLNAT|DR|TUNNEL)\s*[=!]=")
CONTROL = ("ctl/", "l4/records.c")     # the API, and records read back in


def sources():
    return sorted(p.relative_to(SRC).as_posix() for p in SRC.rglob("*.[ch]"))


def test_every_source_is_in_a_layer_folder():
    assert [f for f in sources() if f.rsplit("/", 1)[0] not in LAYERS] == []


def test_folders_include_only_what_lies_below():
    up = set()
    for f in sources():
        layer = LAYERS[f.rsplit("/", 1)[0]]
        for h in re.findall(r'#include "([a-z0-9_/]+\.h)"', (SRC / f).read_text()):
            if "/" in h and LAYERS[h.rsplit("/", 1)[0]] > layer:
                up.add((f, h))
    assert up == UPWARD


def test_a_layers_state_header_holds_types_only():
    """l3/state.h and l4/state.h: the layer's types; core/dp.h composes
    them through pointers, so it includes nothing above core/."""
    states = [f for f in sources() if f.endswith("/state.h")]
    assert states == ["l3/state.h", "l4/state.h"]
    code = [f"{f}: {line}" for f in states for line in (SRC / f).read_text().splitlines()
            if re.match(r"(static |extern |\w[\w\s\*]*\w\s*\()", line)
            and not line.startswith(("struct ", "union ", "enum ", "typedef "))]
    assert code == []


def test_no_packet_path_file_compares_a_forwarding_method():
    compares = [f"{f}:{n}: {line.strip()}" for f in sources() if not f.startswith(CONTROL)
                for n, line in enumerate((SRC / f).read_text().splitlines(), 1)
                if METHOD_COMPARE.search(line)]
    assert compares == []


# pylb/: the domain, the transports, the file formats and the runtime apart.
PYLB = SRC.parent.parent / "pylb"
DOMAIN = ("model", "manager", "errors", "records")
NOT_FOR_THE_DOMAIN = {"appliance", "health", "bgp", "sync", "snapshot", "kernel", "telemetry",
                      "hostinfo", "server", "ctl", "cli", "config", "profile"}


def test_the_domain_imports_no_runtime_transport_or_file_format():
    import ast
    found = {}
    for name in DOMAIN:
        tree = ast.parse((PYLB / f"{name}.py").read_text())
        mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | \
            {f"{n.module}.{a.name}" if n.module == "pylb" else n.module
             for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        bad = {m for m in mods if m and m.startswith("pylb.") and m.split(".")[1] in NOT_FOR_THE_DOMAIN}
        if bad:
            found[name] = sorted(bad)
    assert found == {}
