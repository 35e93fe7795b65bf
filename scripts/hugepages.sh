#!/usr/bin/env bash
# Reserve 2 MiB hugepages and mount hugetlbfs if it is not.
#   hugepages.sh N          at least N (never lowers a reservation: `make bench`)
#   hugepages.sh --exact N  exactly N when no hugepage is in use (`make test`,
#                           `make demo`: they pass with what they reserve
#                           themselves, whatever ran before); at least N else
set -euo pipefail
exact=0
if [ "${1:-}" = "--exact" ]; then exact=1; shift; fi
want=${1:-512}
nr=/proc/sys/vm/nr_hugepages
have=$(cat "$nr")
free=$(awk '/^HugePages_Free:/{print $2}' /proc/meminfo)
if [ "$have" -lt "$want" ] || { [ "$exact" = 1 ] && [ "$have" -gt "$want" ] && [ "$free" = "$have" ]; }; then
    echo "$want" > "$nr"
    have=$(cat "$nr")
    [ "$have" -ge "$want" ] || echo "warning: only $have hugepages could be reserved (wanted $want)" >&2
fi
if ! grep -q ' hugetlbfs ' /proc/mounts; then
    mkdir -p /dev/hugepages
    mount -t hugetlbfs nodev /dev/hugepages
fi
echo "hugepages: $(grep HugePages_Free /proc/meminfo | awk '{print $2}') free of $have; mounted at $(awk '$3=="hugetlbfs"{print $2}' /proc/mounts | tr '\n' ' ')"
