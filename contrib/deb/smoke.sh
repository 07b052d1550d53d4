#!/usr/bin/env bash
# After `dpkg -i symrss_*.deb`: runs the installed sensor the way the
# systemd unit does, without systemd (CI has no systemd as PID 1): the
# unit's ExecStart as the `symrss` user holding only CAP_NET_RAW and
# CAP_NET_ADMIN (setpriv: ambient and bounding set, as
# AmbientCapabilities= and CapabilityBoundingSet= give), its
# RuntimeDirectory and StateDirectory made as systemd makes them, a fake
# $NOTIFY_SOCKET; then the README's operator commands against it:
# `symrss stats`, `symrss top`, a reload (SIGHUP, the unit's
# ExecReload), `symrss control stop`. Everything runs in two network
# namespaces joined by a veth pair this script creates and deletes.
#   usage: contrib/deb/smoke.sh TRACE.pcap
set -euo pipefail
trace=$1
a=symrss-smoke-a-$$ b=symrss-smoke-b-$$
work=$(mktemp -d)
# The capture (user symrss) must reach the notification socket in it.
chmod 755 "$work"
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
  rm -rf "$work" /etc/symrss/smoke.toml /var/lib/symrss/smoke /run/symrss/smoke.sock
}
trap cleanup EXIT
ip netns add "$a"; ip netns add "$b"
for n in "$a" "$b"; do ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1; done
ip link add sma netns "$a" type veth peer name smb netns "$b"
ip -n "$a" link set sma mtu 9000 up
ip -n "$b" link set smb mtu 9000 up

cat > /etc/symrss/smoke.toml <<TOML
interfaces = ["smb"]
output_dir = "/var/lib/symrss/smoke"
[[app]]
name = "ids"
queues = 2
sink = "veth"
[[app]]
name = "rec"
queues = 1
scheme = "keyed"
TOML
# What RuntimeDirectory= and StateDirectory= make for User=symrss.
install -d -o symrss -g symrss /run/symrss /var/lib/symrss /var/lib/symrss/smoke
python3 - "$work/notify.sock" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
import os; os.chmod(sys.argv[1], 0o777)
with open(sys.argv[1] + ".log", "w") as log:
    while True:
        log.write(s.recv(4096).decode() + "\n"); log.flush()
PY
listener=$!
sleep 0.5
exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/symrss@.service | sed 's/%i/smoke/g')
NOTIFY_SOCKET=$work/notify.sock WATCHDOG_USEC=2000000 ip netns exec "$b" \
  setpriv --reuid=symrss --regid=symrss --init-groups \
  --inh-caps=-all,+net_raw,+net_admin --ambient-caps=-all,+net_raw,+net_admin \
  --bounding-set=-all,+net_raw,+net_admin $exec_start 2>"$work/capture.err" &
pid=$!
for _ in $(seq 50); do grep -q READY=1 "$work/notify.sock.log" 2>/dev/null && break; sleep 0.1; done
grep -q READY=1 "$work/notify.sock.log" || { cat "$work/capture.err"; exit 1; }
ip -n "$b" -o link | grep -q 'ids-q0@symrss' || { echo "no veth queue interface"; exit 1; }
ip netns exec "$a" tcpreplay -q --pps 5000 -i sma "$trace" >/dev/null
sent=$(capinfos -c -M "$trace" | awk '/Number of packets/ {print $NF}')
for _ in $(seq 50); do
  got=$(symrss stats --json --socket /run/symrss/smoke.sock | python3 -c 'import json,sys; print(json.load(sys.stdin)["captured"])')
  [ "$got" = "$sent" ] && break; sleep 0.1
done
[ "$got" = "$sent" ] || { echo "captured $got of $sent"; exit 1; }
symrss stats --socket /run/symrss/smoke.sock | tee "$work/stats.txt"
grep -q "rec: received $sent = delivered $sent + dropped 0" "$work/stats.txt"
symrss top --socket /run/symrss/smoke.sock --iterations 1 --interval-ms 200 >"$work/top.txt"
grep -q "ids: received $sent" "$work/top.txt"
kill -HUP "$pid"   # ExecReload
grep -q WATCHDOG=1 "$work/notify.sock.log"
symrss control stop --socket /run/symrss/smoke.sock
wait "$pid"; pid=
grep -q STOPPING=1 "$work/notify.sock.log"
capinfos -c /var/lib/symrss/smoke/rec/q0.pcap | grep -q "Number of packets: *$sent"
[ "$(stat -c %U /var/lib/symrss/smoke/rec/q0.pcap)" = symrss ]
kill "$listener" 2>/dev/null || true
echo "smoke: the installed sensor ran as the unit runs it; stats, top, reload and stop worked"
