#!/usr/bin/env bash
# Instruction counts per operation for one benchmark workload, under
# valgrind's callgrind (perf counters are not available on every machine).
#
#   benches/profile.sh common_parent_cancel/plain [ITERS]
#
# Runs the workload (both implementations whose name matches) for ITERS and
# 2*ITERS operations, prints the instructions per operation from the
# difference (setup cancels out), then the functions of gocontext and
# tokio-util with the most inclusive instructions in the larger run, divided
# by its operation count. Multi-thread workloads run serialized under
# valgrind: the counts are right, the contention is not there.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKLOAD=${1:?usage: benches/profile.sh WORKLOAD [ITERS]}
ITERS=${2:-20000}
OUT=${OUT:-target/profile}
mkdir -p "$OUT"
command -v valgrind >/dev/null || { echo "profile.sh needs valgrind (apt-get install valgrind)" >&2; exit 1; }

BIN=$(cargo bench --bench context --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "context" and m.get("executable"):
        print(m["executable"])
')
safe=$(echo "$WORKLOAD" | tr '/=' '__')
for imp in gocontext tokio-util; do
    total=()
    for n in "$ITERS" $((2 * ITERS)); do
        f="$OUT/$safe.$imp.$n.callgrind"
        # GOCONTEXT_BENCH_IMPL is matched against the implementation name.
        GOCONTEXT_BENCH_COMPARE=1 GOCONTEXT_BENCH_ITERS=$n GOCONTEXT_BENCH_FILTER="$WORKLOAD" \
            GOCONTEXT_BENCH_IMPL="$imp" valgrind --tool=callgrind --callgrind-out-file="$f" "$BIN" \
            >/dev/null 2>&1
        total+=("$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')")
    done
    per=$(( (total[1] - total[0]) / ITERS ))
    [ "$per" -gt 0 ] || continue
    echo "== $WORKLOAD / $imp: $per instructions per operation"
    callgrind_annotate --inclusive=yes "$OUT/$safe.$imp.$((2 * ITERS)).callgrind" 2>/dev/null |
        grep -E '^ *[0-9,]+ .*(gocontext::|tokio_util::)' | grep -v '=>' | head -"${TOP:-15}" |
        sed -E 's/^ *([0-9,]+) +\( *[0-9.]+%\) +/\1 /' |
        awk -v n=$((2 * ITERS)) '{c=$1; gsub(",", "", c); $1=""; printf "%10.1f/op %s\n", c/n, $0}'
done
