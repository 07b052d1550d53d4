#!/usr/bin/env bash
# Builds and runs the DPDK rte_thash comparison bench (needs Debian's
# libdpdk-dev and gcc). Prints one JSON object; exits 3 when DPDK is absent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -f /usr/include/dpdk/rte_thash.h ]; then
  echo "skipped: /usr/include/dpdk/rte_thash.h not found (apt-get install libdpdk-dev)" >&2
  exit 3
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# -march=native: rte_thash_gfni is inline and needs GFNI + AVX-512 enabled.
gcc -O3 -march=native -Wno-deprecated-declarations -I/usr/include/dpdk -I/usr/include/x86_64-linux-gnu/dpdk -include rte_config.h \
  "$here/thash_bench.c" -o "$out/thash_bench" -lrte_hash -lrte_eal
"$out/thash_bench"
