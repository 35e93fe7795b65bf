#!/usr/bin/env bash
# pylb demo: run the appliance on the tap profile, put a client in its own
# network namespace on port p0's TAP interface and a server on p1's, resolve
# the appliance by ARP, ping it, route through it (ping, traceroute), print
# the neighbours, routes and counters, tear everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
PYLB=.venv/bin/pylb
NS=pylb-demo-client
SRV=pylb-demo-server
INSTANCE=demo
LOG=$(mktemp /tmp/pylb-demo.XXXXXX.log)
PID=

cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID"
        wait "$PID" || true
    fi
    ip netns del "$NS" 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    rm -f "$LOG"
}
trap cleanup EXIT
ip netns del "$NS" 2>/dev/null || true
ip netns del "$SRV" 2>/dev/null || true

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# host_ns NAME IFACE ADDRESS: a namespace holding a TAP interface of pylb
host_ns() {
    ip netns add "$1"
    ip link set "$2" netns "$1"
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip -n "$1" addr add "$3" dev "$2"
    ip -n "$1" link set lo up
    ip -n "$1" link set "$2" up
}

step "starting pylb on hwconfig/tap.yaml (instance '$INSTANCE')"
$PYLB run --profile hwconfig/tap.yaml --instance "$INSTANCE" 2>"$LOG" &
PID=$!
for _ in $(seq 300); do
    grep -q 'running:' "$LOG" && break
    kill -0 "$PID" 2>/dev/null || { cat "$LOG"; echo "pylb did not start" >&2; exit 1; }
    sleep 0.1
done
grep -q 'running:' "$LOG" || { cat "$LOG"; echo "pylb did not start in 30 s" >&2; exit 1; }
grep '^pylb:' "$LOG"
$PYLB ports --instance "$INSTANCE"

step "client namespace $NS on TAP interface pylb0 (10.99.0.2/24)"
host_ns "$NS" pylb0 10.99.0.2/24
echo "client neighbour table before: $(ip -n "$NS" neigh show dev pylb0 | grep . || echo '(empty)')"

step "client pings the appliance at 10.99.0.1"
ip netns exec "$NS" ping -c 5 -i 0.2 -W 1 10.99.0.1

step "the client resolved the appliance by ARP"
ip -n "$NS" neigh show 10.99.0.1 dev pylb0

step "server namespace $SRV on TAP interface pylb1 (10.99.1.2/24); both route via the appliance"
host_ns "$SRV" pylb1 10.99.1.2/24
ip -n "$SRV" route add default via 10.99.1.1
ip -n "$NS" route add default via 10.99.0.1

step "client pings the server through the appliance, then traces the route"
ip netns exec "$NS" ping -c 3 -i 0.2 -W 1 10.99.1.2
if command -v traceroute >/dev/null; then
    ip netns exec "$NS" traceroute -n -q 1 -w 2 -m 4 10.99.1.2
fi

step "the appliance's neighbours and routes"
$PYLB neigh --instance "$INSTANCE"
$PYLB routes --instance "$INSTANCE"

step "appliance counters"
$PYLB stats --instance "$INSTANCE"

step "stopping"
kill -TERM "$PID"
wait "$PID"
PID=
grep '^pylb:' "$LOG" | tail -2
echo "hugepage files left for pylb-$INSTANCE: $(ls /dev/hugepages 2>/dev/null | grep -c "^pylb-$INSTANCE" || true)"
