#!/usr/bin/env bash
# CPU time per captured packet on a veth link at the highest rate tcpreplay
# reaches here: symrss capture (2 apps x 4 queues, pcap files), tcpdump -w
# (one, and two at once), and netsniff-ng --out, one after another, same
# trace, same link, same run.
#
# Needs root, iproute2, tcpreplay, tcpdump, netsniff-ng; runs entirely in two
# network namespaces it creates and deletes. Output: one line per tool.
#   usage: [TOOLS="tcpdump symrss-2x4-pcap ..."] [ROUNDS=N] [THREADS=1] \
#          [MTU=1500] [GEN=trafgen [RATE=500kpps] [FLOWS=65536]] bench/capture/run.sh [TRACE] [LOOPS]
# GEN=trafgen sends as many 64-byte UDP frames as TRACE x LOOPS has, each
# (almost) a new flow (bench/capture/udp-flows.trafgen), or with
# FLOWS=65536 frames of 65,536 flows in a random order
# (bench/capture/udp-65536-flows.trafgen), as fast as trafgen goes or at RATE.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
symrss=${SYMRSS:-$here/target/release/symrss}
trace=${1:-$here/../shared/pcaps/PcapPlusPlus__DnsPackets.pcap}
loops=${2:-2000}
a=symrss-bench-a-$$ b=symrss-bench-b-$$
out=$(mktemp -d /dev/shm/symrss-bench.XXXXXX)
# The tools this run started (ended on exit, also when a generator fails).
started=()
cleanup() {
  for p in "${started[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; rm -rf "$out"
}
trap cleanup EXIT
ip netns add "$a"; ip netns add "$b"
for n in "$a" "$b"; do
  ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add bva netns "$a" type veth peer name bvb netns "$b"
# MTU=1500: veth runs XDP natively only with frames that fit a page.
ip -n "$a" link set bva mtu "${MTU:-9000}" up
ip -n "$b" link set bvb mtu "${MTU:-9000}" up
packets=$(( $(capinfos -c -M "$trace" | awk '/Number of packets/ {print $NF}') * loops ))

# CPU time in ns of every thread of a process: the scheduler's own account
# (/proc/PID/task/*/schedstat, first field), not the 10 ms ticks of
# /proc/PID/stat, so a 0.2 s run is measured to the microsecond. Every tool's
# threads live until it is stopped, after the second reading.
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%.0f", s}'; }

measure() { # name, copies, then the command (run inside namespace b; `{n}`
  # in an argument becomes the copy's number, 1..copies). CPU is summed over
  # the copies; captured and drops are the first copy's.
  local name=$1 copies=$2; shift 2
  local pids=() n
  for n in $(seq 1 "$copies"); do
    ip netns exec "$b" "${@//\{n\}/$n}" >"$out/$name.$n.out" 2>"$out/$name.$n.err" &
    pids+=($!)
    started+=($!)
  done
  sleep 1.5
  # READERS=N: a tcpdump on each interface queue ids-q0..q<N-1> (the veth
  # and tap sinks), writing to /dev/null; their CPU is the consumers', not
  # counted; their kernel drops are printed.
  local readers=()
  for n in $(seq 0 $(( ${READERS:-0} - 1 ))); do
    ip netns exec "$b" tcpdump -n -i "ids-q$n" -B 65536 -w /dev/null >"$out/reader-$n.err" 2>&1 &
    readers+=($!)
    started+=($!)
  done
  if [ ${#readers[@]} -gt 0 ]; then sleep 1; fi
  local busy0; busy0=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat)
  local t0=0 t1=0 p
  for p in "${pids[@]}"; do t0=$((t0 + $(cpu_ns "$p"))); done
  if [ -n "${THREADS:-}" ]; then
    for p in "${pids[@]}"; do
      for t in /proc/"$p"/task/*; do echo "${t##*/} $(awk '{print $1}' "$t"/schedstat)"; done
    done >"$out/threads-$name.t0"
  fi
  local start; start=$(date +%s.%N)
  if [ "${GEN:-tcpreplay}" = trafgen ]; then
    local conf=udp-flows.trafgen
    if [ "${FLOWS:-}" = 65536 ]; then conf=udp-65536-flows.trafgen; fi
    ip netns exec "$a" trafgen -q --dev bva --conf "$here/bench/capture/$conf" \
      -n "$packets" ${RATE:+--rate "$RATE"} >"$out/replay-$name.txt" 2>&1
  else
    ip netns exec "$a" tcpreplay -q --topspeed --loop="$loops" -i bva "$trace" >"$out/replay-$name.txt" 2>&1
  fi
  local end; end=$(date +%s.%N)
  sleep 1
  local busy1; busy1=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat)
  for p in "${pids[@]}"; do t1=$((t1 + $(cpu_ns "$p"))); done
  # THREADS=1: each thread's CPU per packet too, over the same window.
  if [ -n "${THREADS:-}" ]; then
    for p in "${pids[@]}"; do
      for t in /proc/"$p"/task/*; do
        printf '    %-16s %6.1f ns/packet  %s context switches (whole life)\n' "$(cat "$t"/comm)" "$(awk -v n="$packets" -v tid="${t##*/}" \
          -v now="$(awk '{print $1}' "$t"/schedstat)" '$1 == tid {print (now - $2) / n}' "$out/threads-$name.t0")" \
          "$(awk '/ctxt_switches/ {s += $2} END {print s}' "$t"/status)"
      done
    done
  fi
  local reader_drops=""
  for p in "${readers[@]}"; do kill -INT "$p"; wait "$p" || true; done
  for n in $(seq 0 $(( ${#readers[@]} - 1 ))); do
    reader_drops+=" $(grep -oE '^[0-9]+ packets (captured|dropped by kernel)' "$out/reader-$n.err" | awk '{print $1}' | paste -sd/)"
  done
  for p in "${pids[@]}"; do kill -INT "$p"; wait "$p" || true; done
  local rate; rate=$(awk -v p="$packets" -v s="$start" -v e="$end" 'BEGIN {printf "%.0f", p / (e - s)}')
  # tcpdump and symrss: "N packets captured", "N packets dropped by kernel";
  # netsniff-ng: "N  packets passed filter", "N  packets failed filter (out of space)".
  local text captured drops
  text=$(cat "$out/$name.1.err" "$out/$name.1.out" | tr '\r' '\n')
  captured=$(grep -oE '[0-9]+ +packets (captured|passed filter)' <<<"$text" | head -1 | awk '{print $1}' || true)
  drops=$(grep -oE '[0-9]+ +packets (dropped by kernel|failed filter)' <<<"$text" | head -1 | awk '{print $1}' || true)
  printf '%-18s sent %d at %s pps  captured %s  kernel drops %s  cpu %.2f s  = %.0f ns/packet\n' \
    "$name" "$packets" "$rate" "${captured:-?}" "${drops:-?}" "$(echo "($t1 - $t0) / 1000000000" | bc -l)" \
    "$(echo "($t1 - $t0) / $packets" | bc -l)"
  # symrss: what its apps dropped (queue full, no reader, sink error).
  local app_drops; app_drops=$(grep -oE 'received [0-9]+ = delivered [0-9]+ \+ dropped [0-9]+' <<<"$text" | awk '{print $NF}' | paste -sd/ || true)
  if [ -n "$app_drops" ]; then echo "    app drops: $app_drops"; fi
  if [ -n "$reader_drops" ]; then echo "    readers captured/dropped:$reader_drops"; fi
  # The whole machine over the same window (user + system + irq + softirq,
  # all processes: the generator, the readers, the kernel's receive work).
  if [ -n "${MACHINE:-}" ]; then
    echo "    machine busy $(echo "($busy1 - $busy0) * 10000000 / $packets" | bc) ns/packet (USER_HZ ticks, generator included)"
  fi
}

# One tool by name. symrss: 2 apps x 4 queues writing pcap files (every
# packet written twice, once per app), the same steering with counting
# sinks (steering and hand-off only), 1 app x 4 pcap queues (the bytes
# tcpdump writes), 1 app x 4 interface queues (veth, tap) each read by a
# tcpdump, 1 and 8 apps x 4 counting queues (8: sym, keyed, xor,
# ... as in `symrss bench engine --apps 8`: what each app adds), and each
# of these with --inline-sinks (outputs written
# on the capture thread). Then what two applications reading the link cost
# without symrss: two tcpdumps at once, each writing every packet (and
# neither seeing whole flows in queues).
run_tool() {
  local s=(capture -i bvb --stats-interval 0 -w "$out/$1")
  case $1 in
    symrss-2x4-pcap) measure "$1" 1 "$symrss" "${s[@]}" --app ids:4 --app rec:4:keyed ;;
    symrss-2x4-count) measure "$1" 1 "$symrss" "${s[@]}" --app ids:4:sym:count --app rec:4:keyed:count ;;
    symrss-1x4-pcap) measure "$1" 1 "$symrss" "${s[@]}" --app ids:4 ;;
    symrss-1x4-count) measure "$1" 1 "$symrss" "${s[@]}" --app a0:4:sym:count ;;
    symrss-8x4-count) measure "$1" 1 "$symrss" "${s[@]}" --app a0:4:sym:count --app a1:4:keyed:count \
      --app a2:4:xor:count --app a3:4:sym:count --app a4:4:keyed:count --app a5:4:xor:count \
      --app a6:4:sym:count --app a7:4:keyed:count ;;
    symrss-2x4-pcap-inline) measure "$1" 1 "$symrss" "${s[@]}" --app ids:4 --app rec:4:keyed --inline-sinks ;;
    symrss-2x4-count-inline) measure "$1" 1 "$symrss" "${s[@]}" --app ids:4:sym:count --app rec:4:keyed:count --inline-sinks ;;
    symrss-2x4-count-w2) measure "$1" 1 "$symrss" "${s[@]}" --workers 2 --app ids:4:sym:count --app rec:4:keyed:count ;;
    symrss-2x4-count-xdp) measure "$1" 1 "$symrss" "${s[@]}" --source afxdp --app ids:4:sym:count --app rec:4:keyed:count ;;
    symrss-2x4-count-w1) measure "$1" 1 "$symrss" "${s[@]}" --workers 1 --app ids:4:sym:count --app rec:4:keyed:count ;;
    symrss-1x4-veth) READERS=4 measure "$1" 1 "$symrss" "${s[@]}" --app ids:4:sym:veth ;;
    symrss-1x4-veth-t2) READERS=4 measure "$1" 1 "$symrss" "${s[@]}" --app ids:4:sym:veth --consumer-threads 2 ;;
    symrss-1x4-veth-t0) READERS=4 measure "$1" 1 "$symrss" "${s[@]}" --app ids:4:sym:veth --consumer-threads 0 ;;
    symrss-1x4-tap) READERS=4 measure "$1" 1 "$symrss" "${s[@]}" --app ids:4:sym:tap ;;
    symrss-1x4-pcap-inline) measure "$1" 1 "$symrss" "${s[@]}" --app ids:4 --inline-sinks ;;
    tcpdump) measure "$1" 1 tcpdump -n -i bvb -B 65536 -w "$out/tcpdump.pcap" ;;
    tcpdump-x2) measure "$1" 2 tcpdump -n -i bvb -B 65536 -w "$out/tcpdump-{n}.pcap" ;;
    netsniff-ng) measure "$1" 1 netsniff-ng --in bvb --out "$out/netsniff.pcap" --silent --ring-size 64MiB ;;
  esac
  rm -rf "${out:?}/$1" "$out"/*.pcap
}
all=(symrss-2x4-pcap symrss-2x4-count symrss-1x4-pcap symrss-1x4-count symrss-8x4-count symrss-1x4-veth symrss-1x4-veth-t2 symrss-1x4-veth-t0 symrss-1x4-tap symrss-2x4-pcap-inline symrss-2x4-count-inline
  symrss-1x4-pcap-inline symrss-2x4-count-w1 symrss-2x4-count-w2 symrss-2x4-count-xdp tcpdump
  tcpdump-x2 netsniff-ng)
# ROUNDS=N: N rounds, each tool once per round, the order rotated by one
# each round. A run is cheaper or dearer by its place in a sequence on this
# VM (measured: the second of two alternating binaries read 10-20 ns per
# packet more whichever it was), so every tool takes every place in turn.
# TOOLS="tcpdump symrss-2x4-pcap" measures only those (exact names).
sel=()
for t in "${all[@]}"; do
  if [ -z "${TOOLS:-}" ] || [[ " $TOOLS " == *" $t "* ]]; then sel+=("$t"); fi
done
n=${#sel[@]}
for round in $(seq 1 "${ROUNDS:-1}"); do
  if [ "${ROUNDS:-1}" -gt 1 ]; then echo "## round $round"; fi
  for k in $(seq 0 $((n - 1))); do
    run_tool "${sel[$(( (k + round - 1) % n ))]}"
  done
done
if [ -n "${VERBOSE:-}" ]; then
  for f in "$out"/*.err; do echo "--- $(basename "$f")"; tail -n 4 "$f"; done
fi
