#!/usr/bin/env bash
# The long fuzzing run of docs/reliability.md: each property test of the library (src/fuzz.rs and
# the LL-HLS packager's) is run again and again, each time with new random cases, for SECONDS
# seconds per target (default 600), and a summary line per target is printed: cases run, time,
# failures. A failure stops that target and keeps its output; proptest writes the shrunk case
# to proptest-regressions/, which is committed and replayed first by every later run.
#
#   scripts/fuzz-long.sh            # ten minutes per target
#   scripts/fuzz-long.sh 60         # one minute per target
#   NICE=19 scripts/fuzz-long.sh    # beside other work
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
out=${FUZZ_OUT:-target/fuzz-long}
mkdir -p "$out"
# The library's test binary, built as `cargo test` builds it.
bin=$(cargo test --lib --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["kind"] == ["lib"] and m.get("executable"):
        print(m["executable"])')
# target, cases per round (a round takes seconds, so the time budget is kept closely)
targets=(
  "fuzz::the_config_parser_never_panics 20000"
  "fuzz::source_urls_never_panic 20000"
  "fuzz::sdp_offers_never_panic 20000"
  "fuzz::redaction_never_panics_and_never_lets_a_registered_secret_through 10000"
  "fuzz::the_stamp_reader_takes_any_frame 5000"
  "fuzz::the_watermark_reader_takes_any_frames 50"
  "publish::llhls::packager::fuzz::any_access_units_are_packaged_or_refused_without_a_panic 2000"
)
status=0
for t in "${targets[@]}"; do
  read -r name chunk <<<"$t"
  start=$(date +%s)
  cases=0
  failed=0
  while [ $(($(date +%s) - start)) -lt "$seconds" ]; do
    if ! PROPTEST_CASES=$chunk nice -n "${NICE:-0}" "$bin" --exact "$name" --test-threads 1 \
      >"$out/${name##*::}.log" 2>&1; then
      failed=1
      status=1
      break
    fi
    cases=$((cases + chunk))
  done
  echo "$name: $cases cases in $(($(date +%s) - start)) s, failed: $failed"
done
exit $status
