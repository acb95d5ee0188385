#!/usr/bin/env bash
# Runs the same workloads on Go's context (benches/go), tokio-util's
# CancellationToken and gocontext, interleaved (Go, Rust, Go, Rust, ...),
# and prints one table: workload, Go, tokio-util, gocontext and the ratios.
#
# Not part of CI: it needs Go, and it takes a few minutes.
#
#   benches/compare.sh                 # 3 rounds of everything
#   ROUNDS=5 benches/compare.sh        # more rounds, steadier medians
#   FILTER=cancel_tree benches/compare.sh
#   FILTER='server_request|concurrency=4000' benches/compare.sh
#
# Knobs (environment): ROUNDS (3), REPS per round (5), TARGET_MS per
# repetition (50), SAMPLES per latency workload (2000), FILTER (substrings of
# workload names, alternatives separated by "|"), GO (the go binary), OUT (target/compare), QUIET (15):
# before each run, wait until other processes use less than this percentage
# of the CPUs over one second, for at most QUIET_WAIT seconds (120); the busy
# share measured just before each run is recorded in the round's file. Set
# QUIET=100 to never wait. TABLE_ONLY=1 skips building and running and
# only tabulates the round files already in OUT. THREADS: the most threads of
# the scaling rows (with_timeout/concurrency=4000, server_request), which run
# at 1 and 2 threads always and at 4, 8 and 16 up to THREADS (default: the
# CPU count). MEMORY (1): also measure heap bytes and allocations per live
# context (benches/memory.rs, and the Go twin's -memory), once, after the
# rounds; MEMORY=0 skips it. LTO (1): the Rust side is built with the
# bench profile of Cargo.toml (fat LTO, one codegen unit); LTO=0 builds it
# with cargo's default release settings instead (thin local LTO, 16 codegen
# units), what a dependent crate gets without a profile of its own. The
# table's footer says which.
#
# Prebuilt, for a machine with neither Go nor Rust (a lent 16-core box):
# BUILD_ONLY=1 builds the three programs (the Go twin, the Rust bench and
# the memory bench) into OUT/bin and stops; BIN=that-folder then runs
# them without building anything or looking for Go. docs/benchmarks.md,
# "The 16-core curve", has the whole recipe.
#
# Each round prints, per workload, the median ns/op of REPS repetitions
# (latency workloads: p50/p99 of SAMPLES samples); the table shows the median
# over the rounds. Ratios are Go / gocontext and tokio-util / gocontext, so
# above 1 means gocontext is faster. Every number in one table comes from the
# same invocation.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-5}
TARGET_MS=${TARGET_MS:-50}
SAMPLES=${SAMPLES:-2000}
FILTER=${FILTER:-}
OUT=${OUT:-target/compare}
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 2)}
MEMORY=${MEMORY:-1}
LTO=${LTO:-1}
if [ "$LTO" = 0 ]; then
    LTO_ENV=(CARGO_PROFILE_BENCH_LTO=false CARGO_PROFILE_BENCH_CODEGEN_UNITS=16)
    BUILD_NOTE="Rust side: cargo's default release settings (LTO=0)"
else
    LTO_ENV=()
    BUILD_NOTE="Rust side: the bench profile, fat LTO and one codegen unit"
fi

BIN=${BIN:-}
GO=${GO:-}
if [ -z "$BIN" ] && [ -z "$GO" ]; then
    if command -v go >/dev/null 2>&1; then
        GO=$(command -v go)
    else
        for g in /usr/lib/go-1.2[1-9]/bin/go /usr/local/go/bin/go; do
            if [ -x "$g" ]; then GO=$g; fi
        done
    fi
fi
if [ -z "$BIN" ] && { [ -z "$GO" ] || ! "$GO" version >/dev/null 2>&1; }; then
    cat >&2 <<'EOF'
compare.sh: Go was not found. The Go side needs Go 1.21 or newer.
Install it, then rerun (or point GO= at the binary):
  Debian 12:  echo 'deb http://deb.debian.org/debian bookworm-backports main' \
                | sudo tee /etc/apt/sources.list.d/backports.list
              sudo apt-get update && sudo apt-get install -y golang-1.23-go
              # the binary is /usr/lib/go-1.23/bin/go
  Ubuntu:     sudo apt-get install -y golang-go   (check: go version >= 1.21)
  macOS:      brew install go
  Elsewhere:  https://go.dev/doc/install
EOF
    exit 1
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ -z "${TABLE_ONLY:-}" ]; then
rm -f "$OUT"/round-*.txt "$OUT"/memory-*.txt "$OUT"/build.txt

if [ -z "$BIN" ]; then
echo "building the Go twin with $("$GO" version)" >&2
(cd benches/go && GOTOOLCHAIN=local GOFLAGS=-mod=mod "$GO" build -o "$OUT/gobench" .)
fi

# Builds one bench target and prints its executable's path.
bench_exe() {
    echo "building the Rust side (cargo bench --bench $1 --no-run)" >&2
    local exe
    exe=$(env "${LTO_ENV[@]}" cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null |
        python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == sys.argv[1] and m.get("executable"):
        print(m["executable"])
' "$1")
    if [ -z "$exe" ]; then
        echo "compare.sh: could not build the Rust benchmark; run: cargo bench --bench $1 --no-run" >&2
        exit 1
    fi
    echo "$exe"
}
if [ -n "$BIN" ]; then
    BIN=$(cd "$BIN" && pwd)
    cp "$BIN/gobench" "$OUT/gobench"
    RUST_BIN=$BIN/context
    MEMORY_BIN=$BIN/memory
    if [ -f "$BIN/build.txt" ]; then cp "$BIN/build.txt" "$OUT/build.txt"; fi
else
    RUST_BIN=$(bench_exe context)
    echo "$BUILD_NOTE" >"$OUT/build.txt"
    if [ "$MEMORY" != 0 ] || [ -n "${BUILD_ONLY:-}" ]; then MEMORY_BIN=$(bench_exe memory); fi
fi
if [ -n "${BUILD_ONLY:-}" ]; then
    mkdir -p "$OUT/bin"
    cp "$OUT/gobench" "$OUT/bin/gobench"
    cp "$RUST_BIN" "$OUT/bin/context"
    cp "$MEMORY_BIN" "$OUT/bin/memory"
    cp "$OUT/build.txt" "$OUT/bin/build.txt"
    # Without debug information: 3 MB instead of 55, to travel light.
    if command -v strip >/dev/null 2>&1; then strip "$OUT/bin/context" "$OUT/bin/memory"; fi
    echo "built into $OUT/bin: gobench, context, memory" >&2
    exit 0
fi

QUIET=${QUIET:-15}
QUIET_WAIT=${QUIET_WAIT:-120}
# Percentage of all CPUs busy over the next second, from /proc/stat.
busy_percent() {
    local a b
    a=($(head -1 /proc/stat))
    sleep 1
    b=($(head -1 /proc/stat))
    local total=0 idle i
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    idle=$((b[4] - a[4] + b[5] - a[5]))
    echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}
# Waits (bounded) for the machine to be quiet; prints the last busy share.
wait_quiet() {
    local start=$SECONDS busy
    busy=$(busy_percent)
    while [ "$busy" -gt "$QUIET" ] && [ $((SECONDS - start)) -lt "$QUIET_WAIT" ]; do
        busy=$(busy_percent)
    done
    echo "$busy"
}

for r in $(seq 1 "$ROUNDS"); do
    busy=$(wait_quiet)
    echo "round $r/$ROUNDS: go (machine ${busy}% busy before the run)" >&2
    echo "# busy-before-run ${busy}%" >"$OUT/round-$r-go.txt"
    "$OUT/gobench" -reps "$REPS" -target "${TARGET_MS}ms" -samples "$SAMPLES" -filter "$FILTER" \
        -threads "$THREADS" >>"$OUT/round-$r-go.txt"
    busy=$(wait_quiet)
    echo "round $r/$ROUNDS: rust (machine ${busy}% busy before the run)" >&2
    echo "# busy-before-run ${busy}%" >"$OUT/round-$r-rust.txt"
    GOCONTEXT_BENCH_COMPARE=1 GOCONTEXT_BENCH_REPS="$REPS" GOCONTEXT_BENCH_TARGET_MS="$TARGET_MS" \
        GOCONTEXT_BENCH_SAMPLES="$SAMPLES" GOCONTEXT_BENCH_FILTER="$FILTER" \
        GOCONTEXT_BENCH_THREADS="$THREADS" "$RUST_BIN" >>"$OUT/round-$r-rust.txt"
done

if [ "$MEMORY" != 0 ]; then
    echo "memory per live context: go, then rust" >&2
    "$OUT/gobench" -memory >"$OUT/memory-go.txt"
    "$MEMORY_BIN" >"$OUT/memory-rust.txt"
fi

fi # TABLE_ONLY

python3 - "$OUT" <<'EOF'
import glob, os, re, statistics, sys

out = sys.argv[1]
vals = {}  # (imp, workload) -> [per-round values]
busy = []  # CPU busy share measured just before each run
order = []
for path in sorted(glob.glob(os.path.join(out, "round-*.txt"))):
    for line in open(path):
        if line.startswith("# busy-before-run"):
            busy.append(line.split()[-1])
            continue
        if line.startswith("#") or not line.strip():
            continue
        imp, name, ns = line.rstrip("\n").split("\t")
        if name not in order:
            order.append(name)
        vals.setdefault((imp, name), []).append(float(ns))

med = {k: statistics.median(v) for k, v in vals.items()}

# Per-node rows for the chains, derived from the same medians.
rows = []
for name in order:
    if not any((imp, name) in med for imp in ("go", "tokio-util", "gocontext")):
        continue  # a baseline of its own (the host rows): a note below
    rows.append((name, 1))
    m = re.match(r"cancel_tree/depth=(\d+)/", name)
    if m and int(m.group(1)) > 1:
        rows.append((name, int(m.group(1))))

def fmt(x):
    if x is None:
        return "—"
    if x < 10:
        return f"{x:.2f}"
    if x < 1000:
        return f"{x:.1f}"
    return f"{x:,.0f}"

def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"

tsv = open(os.path.join(out, "results.tsv"), "w")
tsv.write("workload\tgo\ttokio-util\tgocontext\n")
lines = [
    "| workload (ns) | Go | tokio-util | gocontext | Go ÷ gocontext | tokio-util ÷ gocontext |",
    "|---|---:|---:|---:|---:|---:|",
]
for name, div in rows:
    g, t, o = (med.get((imp, name)) for imp in ("go", "tokio-util", "gocontext"))
    g, t, o = (None if x is None else x / div for x in (g, t, o))
    label = name if div == 1 else f"{name} per node"
    lines.append(f"| {label} | {fmt(g)} | {fmt(t)} | {fmt(o)} | {ratio(g, o)} | {ratio(t, o)} |")
    tsv.write("\t".join([label] + ["" if x is None else f"{x:.3f}" for x in (g, t, o)]) + "\n")
tsv.close()

rounds = len(glob.glob(os.path.join(out, "round-*-go.txt")))
table = "\n".join(lines)
notes = []
baselines = {
    "park-unpark": "bare thread park/unpark hand-off",
    "atomic-load": "bare Acquire load behind one pointer",
    "host": "the host alone (`Instant::now()`; an uncontended `fetch_add`)",
}
for imp, what in baselines.items():
    for n in order:
        if (imp, n) not in med:
            continue
        b = med[(imp, n)]
        o = med.get(("gocontext", n))
        rel = f"; gocontext is {o / b * 100:.0f}% of it" if o else ""
        notes.append(f"- {what}, {n}: {fmt(b)} ns{rel}")
text = (
    table
    + "\n\n"
    + "\n".join(notes)
    + f"\n\nmedian over {rounds} interleaved rounds; CPU busy just before each run: {', '.join(busy)}\n"
)
build = os.path.join(out, "build.txt")
if os.path.exists(build):
    text += open(build).read().strip() + "\n"

# Heap bytes and allocations per live context (memory-*.txt, one run each).
mem = {}
for path in sorted(glob.glob(os.path.join(out, "memory-*.txt"))):
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        imp, name, v = line.rstrip("\n").split("\t")
        mem[(imp, name)] = float(v)
if mem:
    m = [
        "| bytes per live context (allocations) | Go | tokio-util | gocontext |",
        "|---|---:|---:|---:|",
    ]
    for kind in ("with_cancel", "with_timeout", "with_value"):
        cells = []
        for imp in ("go", "tokio-util", "gocontext"):
            b = mem.get((imp, f"memory/{kind}/bytes"))
            a = mem.get((imp, f"memory/{kind}/allocs"))
            cells.append("—" if b is None else f"{b:.0f} ({a:.2f})")
        m.append(f"| `{kind}` | " + " | ".join(cells) + " |")
    memtext = "\n".join(m) + "\n\n100,000 contexts kept alive under an open parent; one run\n"
    open(os.path.join(out, "memory.md"), "w").write(memtext)
    text += "\n" + memtext
open(os.path.join(out, "table.md"), "w").write(text)

# The README's headline rows: a few workloads, the same medians.
headline = [
    ("check_canceled/is_done", 1, "is_done() on a cancelled context"),
    ("context_cancel_done", 1, "is_done() polled by 2 threads"),
    ("common_parent_cancel/plain", 1, "create + cancel a child of one parent, 2 threads"),
    ("common_parent_cancel/shared", 1, "the same under `with_cancel_shared`"),
    ("cancel_tree/depth=1000/root=open", 1000, "1000-deep chain built then cancelled, per node"),
    ("deep_value/depth=100", 1, "value miss at depth 100"),
    ("fanout_cancel/10k", 1, "cancel a parent with 10k children, per child"),
    ("timer/arm_cancel", 1, "with_timeout(1h) + cancel"),
    ("wake_latency/blocking/p50", 1, "wake a blocked waiter, p50 (Go: a goroutine)"),
]
h = [
    "| workload (ns, lower is better) | Go | tokio-util | gocontext |",
    "|---|---:|---:|---:|",
]
for name, div, what in headline:
    if not any((imp, name) in med for imp in ("go", "tokio-util", "gocontext")):
        continue
    g, t, o = (med.get((imp, name)) for imp in ("go", "tokio-util", "gocontext"))
    g, t, o = (None if x is None else x / div for x in (g, t, o))
    h.append(f"| {what} | {fmt(g)} | {fmt(t)} | {fmt(o)} |")
open(os.path.join(out, "headline.md"), "w").write("\n".join(h) + "\n")
print(text)
EOF
echo "raw rounds, table.md, headline.md and results.tsv are in $OUT/" >&2
