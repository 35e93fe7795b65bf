#!/usr/bin/env bash
# Make sure at least $1 (default 512) 2 MiB hugepages are reserved and hugetlbfs
# is mounted. Never lowers an existing reservation.
set -euo pipefail
want=${1:-512}
nr=/proc/sys/vm/nr_hugepages
have=$(cat "$nr")
if [ "$have" -lt "$want" ]; then
    echo "$want" > "$nr"
    have=$(cat "$nr")
    [ "$have" -ge "$want" ] || echo "warning: only $have hugepages could be reserved (wanted $want)" >&2
fi
if ! grep -q ' hugetlbfs ' /proc/mounts; then
    mkdir -p /dev/hugepages
    mount -t hugetlbfs nodev /dev/hugepages
fi
echo "hugepages: $(grep HugePages_Free /proc/meminfo | awk '{print $2}') free of $have; mounted at $(awk '$3=="hugetlbfs"{print $2}' /proc/mounts | tr '\n' ' ')"
