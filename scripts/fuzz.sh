#!/usr/bin/env bash
# libFuzzer targets with AddressSanitizer and UndefinedBehaviorSanitizer:
#   packet  the packet path (native/fuzz/packet.c), every entry point
#   config  the configuration loader (tests/fuzz_config.py, atheris)
#   api     the API's request validation (tests/fuzz_api.py, atheris)
# Usage: scripts/fuzz.sh SECONDS [TARGET...]   (default: every target)
# Each target runs SECONDS from its corpus (fuzz/corpus/TARGET, kept in the
# repo; new inputs that add coverage go to build/fuzz/new/TARGET, and into the
# corpus with FUZZ_MERGE=1); a crash, leak or sanitizer report fails the run
# and leaves its input in build/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}; shift || true
targets=("${@:-packet config api}")
targets=(${targets[*]})
mkdir -p build/fuzz
export PATH="$PWD/.venv/bin:$PATH"     # the Python targets (and their merge children) use it
unset LD_PRELOAD                        # (make test-asan's gcc runtime): the targets bring their own
cflags=$(pkg-config --cflags libdpdk)
libs="$(pkg-config --libs libdpdk) -lcrypto"     # OpenSSL: QUIC-LB's AES
for t in "${targets[@]}"; do
    mkdir -p "build/fuzz/new/$t"
    case $t in
    packet)
        bin=build/fuzz/packet
        # Alignment is not checked: DPDK's x86 code (rte_hash_crc, headers at
        # 14-byte offsets) loads unaligned words by design.
        san="-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize=alignment -fno-sanitize-recover=all -march=x86-64-v2"
        make -s -C native CC=clang-14 O="$PWD/build/fuzz/native" \
            CFLAGS_DP="$san $cflags -DALLOW_EXPERIMENTAL_API"
        if [ ! -x $bin ] || [ -n "$(find native/fuzz build/fuzz/native/libpylb.a -newer $bin | head -1)" ]; then
            echo "fuzz: linking $bin (clang-14, ASan + UBSan)"
            # shellcheck disable=SC2086
            clang-14 ${san/fuzzer-no-link/fuzzer} -Inative/include -Inative/src $cflags -DALLOW_EXPERIMENTAL_API \
                native/fuzz/packet.c build/fuzz/native/libpylb.a $libs -o $bin
        fi
        cmd=($bin -max_len=1600) ;;
    config|api)
        cmd=("tests/fuzz_$t.py" -max_len=1024) ;;
    *) echo "fuzz: unknown target $t (packet, config, api)" >&2; exit 2 ;;
    esac
    echo "fuzz: $t for $secs s"
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "${cmd[@]}" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="build/fuzz/$t-" \
        "build/fuzz/new/$t" "fuzz/corpus/$t" 2>&1 | tee "build/fuzz/$t.log" \
        | grep -E '^(#[0-9]+ +(DONE|INITED)|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY|fuzz setup|mbuf leak)' || true
    test "${PIPESTATUS[0]}" -eq 0 || { echo "fuzz: $t FAILED (build/fuzz/$t.log)"; exit 1; }
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then     # keep what added coverage in the repo's corpus
        "${cmd[@]}" -merge=1 "fuzz/corpus/$t" "build/fuzz/new/$t" >/dev/null 2>&1
        echo "fuzz: $t corpus now $(ls "fuzz/corpus/$t" | wc -l) inputs"
    fi
done
