"""A short run of each libFuzzer target (`make fuzz` runs them for longer):
the packet path with AddressSanitizer, UndefinedBehaviorSanitizer and the
mbuf-leak oracle, the configuration loader and the API's validation. Any
crash, sanitizer report, leak or broken error line fails the test, and the
input is left in build/fuzz/."""

import re
import subprocess

import pytest

from test_cli import ROOT


@pytest.mark.parametrize("target", ["packet", "config", "api"])
def test_fuzz_target_runs_clean(target):
    r = subprocess.run([str(ROOT / "scripts" / "fuzz.sh"), "10", target], capture_output=True,
                       text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    runs = re.search(r"stat::number_of_executed_units: (\d+)", r.stdout)
    assert runs and int(runs.group(1)) > 1000, r.stdout[-2000:]
