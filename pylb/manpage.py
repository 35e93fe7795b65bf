"""Man pages of `pylb` and `pylbctl`, written from their argument parsers
(so they cannot drift from the commands): `python -m pylb.manpage pylb`
prints pylb(8) in roff. The Debian package installs both."""

from __future__ import annotations

import argparse
import sys

from pylb import __version__

SEE_ALSO = {"pylb": "pylbctl", "pylbctl": "pylb"}
MORE = {
    "pylb": "Run as a service: systemctl start pylb@INSTANCE reads "
            "/etc/pylb/INSTANCE/profile.yaml and /etc/pylb/INSTANCE/config.yaml; "
            "systemctl reload applies the configuration again as a diff.",
    "pylbctl": "pylbctl talks to a running appliance over its gRPC API (default "
               "unix:/run/pylb/NAME.sock; tcp:HOST:PORT with TLS).",
}


def _esc(text: str) -> str:
    text = (text or "").replace("\\", "\\\\").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line.startswith((".", "'")) else line
                     for line in text.splitlines())


def _subparsers(p: argparse.ArgumentParser):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in a._choices_actions}
            for name, sub in a.choices.items():
                yield name, helps.get(name, ""), sub


def _options(p: argparse.ArgumentParser) -> list[str]:
    out = []
    for a in p._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if a.option_strings:
            names = ", ".join(a.option_strings)
            if a.nargs != 0:
                names += " " + (a.metavar or a.dest.upper())
        else:
            names = a.metavar or a.dest
        out += [".TP", f"\\fB{_esc(names)}\\fR", _esc(a.help or "")]
    return out


def _commands(p: argparse.ArgumentParser, path: str) -> list[str]:
    out = []
    for name, help_, sub in _subparsers(p):
        full = f"{path} {name}"
        usage = " ".join(sub.format_usage().split(":", 1)[1].split())
        out += [".SS", _esc(full), _esc(help_), ".PP", f"\\fB{_esc(usage)}\\fR"]
        opts = _options(sub)
        if opts:
            out += [".RS"] + opts + [".RE"]
        out += _commands(sub, full)
    return out


def render(prog: str, p: argparse.ArgumentParser) -> str:
    lines = [f'.TH {prog.upper()} 8 "" "pylb {__version__}" "pylb"', ".SH NAME",
             f"{prog} \\- {_esc(p.description)}", ".SH SYNOPSIS",
             f"\\fB{_esc(' '.join(p.format_usage().split(':', 1)[1].split()))}\\fR",
             ".SH DESCRIPTION", _esc(MORE[prog]), ".SH OPTIONS", *_options(p),
             ".SH COMMANDS", *_commands(p, prog),
             ".SH SEE ALSO", f"\\fB{SEE_ALSO[prog]}\\fR(8); the operator guide "
             "(docs/operator-guide.md in pylb's sources)"]
    return "\n".join(lines) + "\n"


def parsers() -> dict[str, argparse.ArgumentParser]:
    from pylb import cli, ctl
    return {"pylb": cli.parser(), "pylbctl": ctl.parser()}


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1 or args[0] not in ("pylb", "pylbctl"):
        print("usage: python -m pylb.manpage pylb|pylbctl", file=sys.stderr)
        return 2
    sys.stdout.write(render(args[0], parsers()[args[0]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
