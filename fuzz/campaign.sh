#!/usr/bin/env bash
# One fuzz campaign, as docs/fuzzing.md describes it:
#
#   fuzz/campaign.sh <target> [seconds] [work dir]
#
# 1. fuzzes <target> for [seconds] (default 3600) without a sanitizer
#    (`-s none`: AddressSanitizer makes these targets 4-5x slower at the same
#    coverage, see docs/fuzzing.md), from a scratch copy of the checked-in
#    corpus, so that the run does not touch fuzz/corpus/;
# 2. minimises the grown corpus (`cargo fuzz cmin`);
# 3. replays the minimised corpus once under AddressSanitizer (cargo-fuzz's
#    default build), so every input the campaign kept is also checked for
#    memory errors (a failure there stops the script with a nonzero exit).
#
# The sanitizer-free build lives in its own target dir (target/nosan), so it
# never overwrites the AddressSanitizer build that `cargo fuzz run` uses.
# Logs: <work dir>/run.log, cmin.log, asan-replay.log; the minimised corpus
# is <work dir>/corpus. To commit it, copy it into fuzz/corpus/<target>/ as
# seed-min-<sha1> files (git tracks only seed-* there; tests/fuzz_replay.rs
# and the CI smoke replay them all).
set -euo pipefail

t=${1:?usage: campaign.sh <target> [seconds] [work dir]}
secs=${2:-3600}
cd "$(dirname "$0")"
work=${3:-target/campaign/$t}
nosan=(--sanitizer none --target-dir target/nosan)

rm -rf "$work" && mkdir -p "$work/corpus"
cp corpus/"$t"/seed-* "$work/corpus/"
echo "campaign: $t, $secs s, from $(ls "$work/corpus" | wc -l) inputs; $(date -u)"

cargo +nightly fuzz run "${nosan[@]}" "$t" "$work/corpus" -- \
  -max_total_time="$secs" -print_final_stats=1 >"$work/run.log" 2>&1
grep -E '#[0-9]+[[:space:]]+DONE|^Done|stat::' "$work/run.log"
echo "campaign: corpus $(ls "$work/corpus" | wc -l) files, $(cat "$work/corpus"/* | wc -c) bytes"

cargo +nightly fuzz cmin "${nosan[@]}" "$t" "$work/corpus" >"$work/cmin.log" 2>&1
echo "campaign: minimised: $(ls "$work/corpus" | wc -l) files, $(cat "$work/corpus"/* | wc -c) bytes"

cargo +nightly fuzz run "$t" "$work/corpus" -- -runs=0 >"$work/asan-replay.log" 2>&1
grep -E 'INITED' "$work/asan-replay.log"
echo "campaign: $t done, minimised corpus replayed under AddressSanitizer; $(date -u)"
