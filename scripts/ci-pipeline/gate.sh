#!/usr/bin/env bash
# The release gate, in the mode GATE_MODE asks for (block, the job's default; warn; suite: the suite's own
# gate.mode), against the last green release's report when the Baseline stage found one. Writes
# results/gate-verdict for the Jenkinsfile and, when the gate failed, results/gate-reason (its first reason, one
# line: the commit status shows it):
#   pass  the gate passed                                   exit 0
#   warn  it failed, but the mode only warns (release goes on, the build is marked unstable)   exit 0
#   fail  it failed and blocks the release                  exit 1 (2: bad input)
# `evaluator gate` runs twice: once in block mode for the verdict itself, once in the chosen mode for the log.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

report="$RESULTS_DIR/report.json"
flags="$(gate_mode)"
read -r -a mode <<<"$flags"
baseline=()
if [ -n "${BASELINE_REPORT:-}" ] && [ -f "$BASELINE_REPORT" ]; then baseline=(--baseline "$BASELINE_REPORT"); fi

set +e
evaluator gate "$report" --mode block "${baseline[@]}" >/dev/null 2>&1
strict=$?
evaluator gate "$report" "${mode[@]}" "${baseline[@]}" 2> >(tee "$RESULTS_DIR/gate.log" >&2)
chosen=$?
wait
set -e
if [ "$strict" -eq 2 ] || [ "$chosen" -eq 2 ]; then die 2 "the gate could not read $report"; fi
if [ "$chosen" -ne 0 ]; then verdict=fail
elif [ "$strict" -ne 0 ]; then verdict=warn
else verdict=pass
fi
echo "$verdict" >"$RESULTS_DIR/gate-verdict"
rm -f "$RESULTS_DIR/gate-reason"
if [ "$verdict" != pass ]; then
  # The first "  - reason" (or "  ? inconclusive") line of `evaluator gate`, else its summary line.
  reason="$(sed -n 's/^  [-?] //p' "$RESULTS_DIR/gate.log" | head -n 1)"
  [ -n "$reason" ] || reason="$(grep -v '^\s*$' "$RESULTS_DIR/gate.log" | tail -n 1)"
  printf '%s\n' "${reason:-the gate failed}" >"$RESULTS_DIR/gate-reason"
fi
log "gate verdict: $verdict"
[ "$verdict" != fail ]
