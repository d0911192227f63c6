#!/usr/bin/env bash
# Fuzzes longer than the test suite does. Runs one libFuzzer target of
# tests/fuzz (or all of them, one after another) for SECONDS each (default
# 600), from the committed seeds in tests/fuzz/corpus/NAME plus the corpus
# that earlier runs and ctest grew in build-sanitize/tests/fuzz/corpus/NAME
# (new inputs go there). Builds the targets first, in the tree and with the
# configuration scripts/test-sanitized.sh uses (clang, ASan + UBSan,
# PARLEY_FUZZ). Prints per target the inputs executed and any finding, and
# exits non-zero on a finding (a crash, broken invariant, leak, timeout or
# sanitizer report), whose input is left as build-sanitize/tests/fuzz/NAME-crash-*.
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS]     e.g. scripts/fuzz.sh inbound_screen 3600
#   scripts/fuzz.sh --minimize [TARGET|all]    adds to tests/fuzz/corpus/NAME the grown
#                                              inputs that reach new coverage (-merge=1)
#   scripts/fuzz.sh --list                     the targets
#
# PARLEY_FUZZ_JOBS (default 1) sets libFuzzer's -jobs and -workers: that many
# processes fuzz each target at once, one core each. PARLEY_SANITIZE_BUILD_DIR
# moves the build tree, as for scripts/test-sanitized.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${PARLEY_SANITIZE_BUILD_DIR:-$root/build-sanitize}"
fuzz_dir="$build_dir/tests/fuzz"
jobs="${PARLEY_FUZZ_JOBS:-1}"

usage() {
  sed -n '/^#   scripts\/fuzz.sh \[/,/^#$/p' "$0" | sed 's/^#//' >&2
  exit "${1:-2}"
}

all_targets() {
  for source in "$root"/tests/fuzz/fuzz_*.cpp; do
    local name="${source##*/fuzz_}"
    echo "${name%.cpp}"
  done
}

mode=run
case "${1:-}" in
  --minimize) mode=minimize; shift ;;
  --list) all_targets; exit 0 ;;
  -h | --help) usage 0 ;;
  -*) echo "fuzz.sh: unknown option $1" >&2; usage ;;
esac
target="${1:-all}"
target="${target#fuzz_}"
seconds="${2:-600}"
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: SECONDS must be a positive number" >&2; usage; }
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: PARLEY_FUZZ_JOBS must be a positive number" >&2; exit 2; }
if [[ $target == all ]]; then
  mapfile -t targets < <(all_targets)
elif [[ -f $root/tests/fuzz/fuzz_$target.cpp ]]; then
  targets=("$target")
else
  echo "fuzz.sh: no fuzz target '$target'; there are: $(all_targets | tr '\n' ' ')" >&2
  exit 2
fi

# The build tree of scripts/test-sanitized.sh, configured as it does (the
# flags must stay the same there and here, or each script would rebuild the
# tree). Configured every time: Makefiles know a newly added target only then.
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -gline-tables-only" \
  -DCMAKE_CXX_COMPILER=clang++ \
  -DPARLEY_SANITIZE=ON -DPARLEY_FUZZ=ON -DPARLEY_BENCH=OFF >/dev/null
cmake --build "$build_dir" -j2 --target "${targets[@]/#/fuzz_}"

# As in scripts/test-sanitized.sh: every report is fatal.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

files_in() { find "$1" -maxdepth 1 -type f | wc -l; }

# The inputs libFuzzer left for NAME's findings so far.
artifacts_of() {
  find "$fuzz_dir" -maxdepth 1 -type f \
    \( -name "$1-crash-*" -o -name "$1-leak-*" -o -name "$1-timeout-*" -o -name "$1-oom-*" \) |
    sort
}

# Fuzzes NAME for $seconds; returns 1 on a finding.
fuzz_one() {
  local name=$1
  local binary="$fuzz_dir/fuzz_$name" seeds="$root/tests/fuzz/corpus/$name"
  local grown="$fuzz_dir/corpus/$name" logs="$fuzz_dir/logs/$name"
  mkdir -p "$grown" "$logs"
  rm -f "$logs"/fuzz-*.log
  local before
  before="$(artifacts_of "$name")"
  echo "fuzz.sh: fuzz_$name for $seconds s, $jobs job(s); progress in $logs/fuzz-0.log" >&2
  local status=0
  # With -jobs libFuzzer writes each job's output to fuzz-JOB.log in the
  # working directory.
  (cd "$logs" && "$binary" -jobs="$jobs" -workers="$jobs" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$fuzz_dir/$name-" \
    "$grown" "$seeds" >"$logs/driver.log" 2>&1) || status=$?
  local job_logs=("$logs"/fuzz-*.log)
  [[ -f ${job_logs[0]} ]] || job_logs=()
  local executions=0 new_inputs=0
  if [[ ${#job_logs[@]} -gt 0 ]]; then
    executions="$(awk '/^stat::number_of_executed_units:/ { n += $2 } END { print n + 0 }' \
      "${job_logs[@]}")"
    new_inputs="$(awk '/^stat::new_units_added:/ { n += $2 } END { print n + 0 }' "${job_logs[@]}")"
  fi
  local found
  found="$(comm -13 <(echo "$before") <(artifacts_of "$name") | sed '/^$/d')"
  if [[ $status -eq 0 && -z $found ]]; then
    echo "fuzz_$name: $executions executions, $new_inputs new inputs" \
      "(grown corpus: $(files_in "$grown") files), no findings"
    return 0
  fi
  echo "fuzz_$name: $executions executions, FINDING (exit status $status)"
  # Each job's log (libFuzzer also copies them into driver.log, which alone
  # tells why no job started).
  local log shown=("${job_logs[@]}")
  [[ ${#shown[@]} -gt 0 ]] || shown=("$logs/driver.log")
  for log in "${shown[@]}"; do
    # The report: from the first sanitizer or libFuzzer error line on.
    awk '/^==[0-9]+==|^ERROR: |runtime error:|deadly signal|^ALARM: |^SUMMARY: / { on = 1 } on' \
      "$log" | head -n 60 || true
  done
  local input
  for input in $found; do
    echo "  input: $input"
    echo "  reproduce: $binary $input"
  done
  [[ -n $found ]] || echo "  see $logs"
  return 1
}

# Adds to the committed seeds of NAME the grown inputs that reach coverage
# they do not; the seeds themselves are kept.
minimize_one() {
  local name=$1
  local binary="$fuzz_dir/fuzz_$name" seeds="$root/tests/fuzz/corpus/$name"
  local grown="$fuzz_dir/corpus/$name" logs="$fuzz_dir/logs/$name"
  mkdir -p "$grown" "$logs"
  local before
  before="$(files_in "$seeds")"
  if ! (cd "$logs" && "$binary" -merge=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$fuzz_dir/$name-" "$seeds" "$grown" >"$logs/merge.log" 2>&1); then
    echo "fuzz_$name: the merge failed (an input crashes?); see $logs/merge.log"
    tail -n 30 "$logs/merge.log"
    return 1
  fi
  echo "fuzz_$name: $(($(files_in "$seeds") - before)) of $(files_in "$grown") grown inputs" \
    "added to tests/fuzz/corpus/$name"
}

failed=()
for name in "${targets[@]}"; do
  if [[ $mode == minimize ]]; then
    minimize_one "$name" || failed+=("$name")
  else
    fuzz_one "$name" || failed+=("$name")
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  if [[ $mode == minimize ]]; then
    echo "fuzz.sh: the merge failed for: ${failed[*]/#/fuzz_}" >&2
  else
    echo "fuzz.sh: findings in: ${failed[*]/#/fuzz_}" >&2
  fi
  exit 1
fi
if [[ $mode == minimize ]]; then
  echo "fuzz.sh: review the new files under tests/fuzz/corpus (git status) before committing" >&2
fi
