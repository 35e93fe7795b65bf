#!/usr/bin/env bash
# The test suite against native code and the Cython binding built with
# AddressSanitizer and UndefinedBehaviorSanitizer (gcc; any report aborts the
# process, failing its test). Runs in a copy of the tree (build/asan/) with
# its own virtualenv, so `pylb run` subprocesses use the sanitized build too.
# Python itself is not instrumented: the ASan runtime is preloaded, and leak
# detection is off (the interpreter keeps memory until exit by design).
# Usage: scripts/test-asan.sh [pytest args]   (default: the whole suite)
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/asan
mkdir -p $tree
# The project's files (tracked, and new ones not ignored), as they are now.
git ls-files -z -co --exclude-standard | tar -c --null -T - -f - | tar -x -C $tree -f -
cd $tree
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip==24.3.1
PYLB_SANITIZE=address,undefined .venv/bin/pip install -q -e '.[test]'
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
exec .venv/bin/python -m pytest -q -ra -p no:cacheprovider "${@:-tests}"
