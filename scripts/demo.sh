#!/usr/bin/env bash
# pylb demo: run the appliance on the tap profile with examples/demo.yaml, put
# a client in its own network namespace on port p0's TAP interface and, on
# p1's, a LAN (a bridge namespace) with three backend namespaces serving HTTP.
# Resolve the appliance by ARP, ping it, route through it (ping, traceroute),
# balance HTTP requests to the VIP over the backends and show which backend
# served each, the services and the connection table; tear everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
PYLB=.venv/bin/pylb
NS=pylb-demo-client
LAN=pylb-demo-lan
BACKENDS="pylb-demo-b1 pylb-demo-b2 pylb-demo-b3"
VIP=10.99.0.100
INSTANCE=demo
LOG=$(mktemp /tmp/pylb-demo.XXXXXX.log)
PID=

cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID"
        wait "$PID" || true
    fi
    for ns in $BACKENDS; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    done
    for ns in "$NS" "$LAN" $BACKENDS; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$LOG" "${WWW:-}"
}
trap cleanup EXIT
for ns in "$NS" "$LAN" $BACKENDS; do ip netns del "$ns" 2>/dev/null || true; done
WWW=$(mktemp -d /tmp/pylb-demo-www.XXXXXX)

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

step "starting pylb on hwconfig/tap.yaml with examples/demo.yaml (instance '$INSTANCE')"
$PYLB config check examples/demo.yaml
$PYLB run --profile hwconfig/tap.yaml --config examples/demo.yaml --instance "$INSTANCE" 2>"$LOG" &
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

step "LAN namespace $LAN bridges p1's TAP interface pylb1 to three backends (10.99.1.11-13)"
ip netns add "$LAN"
ip link set pylb1 netns "$LAN"
# The TAP's kernel side starts with the port's own MAC; as a bridge port it
# must not claim that address.
ip -n "$LAN" link set pylb1 address 02:00:00:00:ee:01
ip -n "$LAN" link add br0 type bridge
ip -n "$LAN" link set br0 up
ip -n "$LAN" link set pylb1 master br0 up
i=0
for ns in $BACKENDS; do
    i=$((i + 1))
    ip netns add "$ns"
    ip link add "pylbdv$i" type veth peer name "pylbdv${i}p"
    ip link set "pylbdv$i" netns "$LAN"
    ip -n "$LAN" link set "pylbdv$i" master br0 up
    ip link set "pylbdv${i}p" netns "$ns"
    ip -n "$ns" link set "pylbdv${i}p" name eth0
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip -n "$ns" addr add "10.99.1.1$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" route add default via 10.99.1.1
    mkdir -p "$WWW/$ns"
    echo "$ns" > "$WWW/$ns/index.html"
    ip netns exec "$ns" python3 -m http.server 8080 --bind 0.0.0.0 --directory "$WWW/$ns" \
        >/dev/null 2>&1 &
done
for ns in $BACKENDS; do
    for _ in $(seq 100); do
        ip netns exec "$ns" ss -ltn | grep -q ':8080 ' && break
        sleep 0.05
    done
done
ip -n "$NS" route add default via 10.99.0.1

step "client pings a backend through the appliance, then traces the route"
ip netns exec "$NS" ping -c 3 -i 0.2 -W 1 10.99.1.11
if command -v traceroute >/dev/null; then
    ip netns exec "$NS" traceroute -n -q 1 -w 2 -m 4 10.99.1.11
fi

step "12 HTTP requests from the client to the VIP http://$VIP/ (NAT, weighted round-robin 2:1:1)"
for n in $(seq 12); do
    printf 'request %2d served by %s\n' "$n" \
        "$(ip netns exec "$NS" curl -s --max-time 5 "http://$VIP/")"
done

step "the connection table (like ipvsadm -L -c): closed connections linger in time_wait"
$PYLB conns --instance "$INSTANCE"

step "the service, its backends and their connections (like ipvsadm -L -n)"
$PYLB services --instance "$INSTANCE"

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
