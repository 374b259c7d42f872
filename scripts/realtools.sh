#!/usr/bin/env bash
# Real-tool tunnel checks by hand (issue 4): the same flows as crates/cli/tests/it/realtools.rs,
# printing the figures that go into docs/evaluation-realtools.md.
#
#  1. dns2tcp: dns2tcpd authoritative for tunnel.test on 127.53.250.1:53 (loopback; dns2tcpc only
#     talks to port 53), resource = a local echo server; dns2tcpc pushes $KB KB through it;
#     tshark captures on lo; `dnsight analyze` reads the pcap.
#  2. iodine: two network namespaces joined by a veth pair (client 10.99.0.1, server 10.99.0.2);
#     iodined in the server one, `dnsight serve` (127.0.0.1:53, upstream 10.99.0.2:53) and iodine
#     in the client one; UDP datagrams are sent into the tunnel; `dnsight analyze` re-reads the
#     resolver's event log, and the live alerts of `dnsight serve` are shown too.
#
# Needs root, dns2tcp, iodine, tshark, jq, python3. Usage: scripts/realtools.sh [KB]
# Everything it starts is stopped on exit; the namespaces are deleted.
set -euo pipefail
cd "$(dirname "$0")/.."
KB=${1:-48}
BIN=${DNSIGHT_BIN:-target/debug/dnsight}
[ -x "$BIN" ] || cargo build -q -p dnsight
[ "$(id -u)" = 0 ] || { echo "realtools.sh: needs root" >&2; exit 1; }
for t in dns2tcpd dns2tcpc iodine iodined tshark jq python3; do
  command -v "$t" >/dev/null || { echo "realtools.sh: $t not installed" >&2; exit 1; }
done
W=$(mktemp -d /tmp/realtools.XXXXXX)
PIDS=()
NC=rtc$$ NS=rts$$
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NC" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT

# waits (≤ 20 s) until file $1 contains $2
wait_for() {
  for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "realtools.sh: timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1
}

# figures from an event log (JSON lines) and an alerts file, for domain $3
figures() {
  local ev=$1 al=$2 dom=$3
  local q u
  q=$(jq -r "select(.qname|endswith(\"$dom\")) | .qname" "$ev" | wc -l)
  u=$(jq -r "select(.qname|endswith(\"$dom\")) | .qname" "$ev" | sort -u | wc -l)
  echo "  queries to $dom: $q, unique names: $u"
  echo "  query types: $(jq -r "select(.qname|endswith(\"$dom\")) | .qtype" "$ev" | sort | uniq -c | tr -s ' ' | paste -sd,)"
  echo "  longest name: $(jq -r "select(.qname|endswith(\"$dom\")) | .qname | length" "$ev" | sort -n | tail -1) chars"
  jq -r "select(.kind==\"tunneling\" and .destination==\"$dom\") |
    \"  alert: tunneling device=\(.device) score=\(.score) severity=\(.severity)\n    \(.summary)\"" "$al" | tail -2
  jq -r "select(.kind!=\"tunneling\") | \"  other alert: \(.kind) \(.destination) score=\(.score)\"" "$al" | sort -u
}

echo "== dns2tcp (tshark on lo, dnsight analyze over the pcap) =="
ADDR=127.53.250.1
python3 - >"$W/echo.port" <<'PY' &
import socket, sys, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
def h(c):
    while (d := c.recv(65536)):
        c.sendall(d)
while True:
    c, _ = s.accept(); threading.Thread(target=h, args=(c,), daemon=True).start()
PY
PIDS+=($!)
wait_for "$W/echo.port" .
cat >"$W/dns2tcpd.conf" <<CONF
listen = $ADDR
port = 53
user = nobody
chroot = /tmp
domain = tunnel.test
resources = echo:127.0.0.1:$(cat "$W/echo.port")
CONF
tshark -i lo -w "$W/dns2tcp.pcap" -f "udp port 53 and host $ADDR" >"$W/tshark.log" 2>&1 &
TSHARK=$!; PIDS+=($TSHARK)
wait_for "$W/tshark.log" "Capture started"
dns2tcpd -F -d 1 -f "$W/dns2tcpd.conf" >"$W/dns2tcpd.log" 2>&1 & PIDS+=($!)
wait_for "$W/dns2tcpd.log" "Listening on"
LPORT=$((20000 + $$ % 20000))
dns2tcpc -z tunnel.test -r echo -l "$LPORT" "$ADDR" >"$W/dns2tcpc.log" 2>&1 & PIDS+=($!)
wait_for "$W/dns2tcpc.log" "Listening on port"
START=$(date +%s.%N)
python3 - "$LPORT" "$KB" <<'PY'
import socket, sys, threading, os
port, kb = int(sys.argv[1]), int(sys.argv[2])
data = os.urandom(kb * 1024)
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(60)
threading.Thread(target=s.sendall, args=(data,), daemon=True).start()
got = b""
while len(got) < len(data):
    got += s.recv(65536)
print(f"  echoed {len(got)} bytes through dns2tcp, intact: {got == data}")
PY
END=$(date +%s.%N)
echo "  tunnel throughput: $(echo "$KB $START $END" | awk '{printf "%.1f KB/s (round trip)", $1/($3-$2)}')"
kill -INT $TSHARK; wait $TSHARK 2>/dev/null || true
"$BIN" analyze --no-progress --events-out "$W/dns2tcp.jsonl" --alerts-out "$W/dns2tcp-alerts.jsonl" "$W/dns2tcp.pcap" >/dev/null
figures "$W/dns2tcp.jsonl" "$W/dns2tcp-alerts.jsonl" tunnel.test

echo
echo "== dns2tcp through dnsight serve (the protective resolver) =="
PORT2=$((40000 + $$ % 20000))
sed -i "s/^listen = .*/listen = 127.0.0.1/; s/^port = .*/port = $PORT2/" "$W/dns2tcpd.conf"
dns2tcpd -F -d 1 -f "$W/dns2tcpd.conf" >"$W/dns2tcpd2.log" 2>&1 & PIDS+=($!)
wait_for "$W/dns2tcpd2.log" "Listening on"
"$BIN" serve --listen 127.53.250.2:53 --upstream 127.0.0.1:$PORT2 --events-out "$W/serve2.jsonl" \
  --alerts-out "$W/serve2-alerts.jsonl" >"$W/serve2.log" 2>&1 & SERVE2=$!; PIDS+=($SERVE2)
wait_for "$W/serve2.log" "resolver ready"
LPORT2=$((LPORT + 1))
dns2tcpc -z tunnel.test -r echo -l "$LPORT2" 127.53.250.2 >"$W/dns2tcpc2.log" 2>&1 & C2=$!; PIDS+=($C2)
wait_for "$W/dns2tcpc2.log" "Listening on port"
timeout 15 python3 - "$LPORT2" <<'PY' || echo "  echo through dnsight serve failed"
import socket, sys, os
data = os.urandom(4096)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.settimeout(10)
s.sendall(data)
got = b""
try:
    while len(got) < len(data):
        x = s.recv(65536)
        if not x:
            break
        got += x
except OSError as e:
    print(f"  {e}")
print(f"  echoed {len(got)} of {len(data)} bytes through dns2tcp via dnsight serve")
PY
kill $C2 2>/dev/null || true
echo "  dns2tcpc said: $(grep -i error "$W/dns2tcpc2.log" | tr '\n' ' ')"
kill -INT $SERVE2; wait $SERVE2 2>/dev/null || true

echo
echo "== iodine (network namespaces, through dnsight serve) =="
[ -e /dev/net/tun ] || { mkdir -p /dev/net; mknod /dev/net/tun c 10 200; }
ip netns add "$NC"; ip netns add "$NS"
ip -n "$NC" link set lo up; ip -n "$NS" link set lo up
ip link add "${NC}v" netns "$NC" type veth peer name "${NS}v" netns "$NS"
ip -n "$NC" addr add 10.99.0.1/30 dev "${NC}v"; ip -n "$NS" addr add 10.99.0.2/30 dev "${NS}v"
ip -n "$NC" link set "${NC}v" up; ip -n "$NS" link set "${NS}v" up
ip netns exec "$NS" iodined -f -P secret -l 10.99.0.2 -p 53 10.53.0.1 tunnel2.test >"$W/iodined.log" 2>&1 & PIDS+=($!)
wait_for "$W/iodined.log" "Listening to dns"
ip netns exec "$NC" "$BIN" serve --listen 127.0.0.1:53 --upstream 10.99.0.2:53 \
  --events-out "$W/iodine.jsonl" --alerts-out "$W/iodine-live.jsonl" >"$W/serve.log" 2>&1 & SERVE=$!; PIDS+=($SERVE)
wait_for "$W/serve.log" "resolver ready"
ip netns exec "$NC" iodine -f -r -L 0 -m 1000 -P secret 127.0.0.1 tunnel2.test >"$W/iodine.log" 2>&1 & IOD=$!; PIDS+=($IOD)
wait_for "$W/iodine.log" "Connection setup complete"
ip netns exec "$NC" bash -c "for i in \$(seq $((KB + 16))); do head -c 1000 /dev/urandom > /dev/udp/10.53.0.1/9; done"
wait_for "$W/iodine-live.jsonl" tunneling
# let the queued datagrams drain through the tunnel: wait (bounded) for the fast-rule alert
wait_for "$W/iodine-live.jsonl" "(fast)" 2>/dev/null || echo "  (no fast-rule alert within 20 s)"
kill $IOD; wait $IOD 2>/dev/null || true
kill -INT $SERVE; wait $SERVE 2>/dev/null || true
echo "  live (dnsight serve) alert:"
jq -r 'select(.kind=="tunneling") | "    tunneling device=\(.device) score=\(.score) severity=\(.severity)"' "$W/iodine-live.jsonl" | tail -1
echo "  resolver: $(grep -o 'queries=[0-9]*.*servfail=[0-9]*' "$W/serve.log" | tail -1 | tr ' ' '\n' | grep -E '^(queries|upstream_failures|servfail)=' | paste -sd' ')"
"$BIN" analyze --no-progress --alerts-out "$W/iodine-alerts.jsonl" "$W/iodine.jsonl" >/dev/null
echo "  offline (dnsight analyze over the resolver's event log):"
figures "$W/iodine.jsonl" "$W/iodine-alerts.jsonl" tunnel2.test
echo
echo "realtools.sh: files in $W"
