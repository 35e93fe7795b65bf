#!/usr/bin/env bash
# System packages pylb needs: DPDK 22.11 from Debian, OpenSSL's headers (QUIC-LB's
# AES), a compiler, iproute2 and ping, traceroute, curl, hping3 (floods) and BIRD 2 (BGP:
# the appliance's speaker, and the test routers) for the end-to-end tests, clang 14 with libFuzzer
# and its sanitizer runtimes for the fuzz targets, promtool, systemd-analyze and
# groff for the operations files' checks, dpdk-doc for DPDK's example sources (l3fwd:
# the benchmarks' second baseline, which the bench harness's test runs), valgrind (the
# instructions benchmark, which it runs too). Installs only what is missing.
set -euo pipefail
need=()
[ -d /usr/share/dpdk/examples/l3fwd ] || need+=(dpdk-doc)
pkg-config --exists libdpdk 2>/dev/null || need+=(dpdk dpdk-dev libdpdk-dev)
[ -e /usr/include/openssl/aes.h ] || need+=(libssl-dev)  # QUIC-LB's AES (libdpdk-dev has it too)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v gcc >/dev/null || need+=(gcc)
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
command -v traceroute >/dev/null || need+=(traceroute)
command -v curl >/dev/null || need+=(curl)
command -v hping3 >/dev/null || need+=(hping3)
command -v bird >/dev/null || need+=(bird2)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v clang-14 >/dev/null || need+=(clang-14)
[ -e /usr/lib/llvm-14/lib/libFuzzer.a ] || need+=(libfuzzer-14-dev)
ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.asan-x86_64.a >/dev/null 2>&1 \
    || need+=(libclang-rt-14-dev)
command -v promtool >/dev/null || need+=(prometheus)      # promtool: the alerting rules' tests
command -v systemd-analyze >/dev/null || need+=(systemd)  # the unit's verification
command -v groff >/dev/null || need+=(groff-base)         # the man pages' rendering
command -v chromium >/dev/null || need+=(chromium)        # the status page in a real browser
command -v valgrind >/dev/null || need+=(valgrind)        # callgrind: bench/instructions.py
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "DPDK $(pkg-config --modversion libdpdk)"
