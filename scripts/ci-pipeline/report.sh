#!/usr/bin/env bash
# JUnit for the junit step, Markdown for the PR comment, HTML for the HTML publisher; compared with the
# previous release's report when one is archived as BASELINE_REPORT.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

baseline=()
if [ -n "${BASELINE_REPORT:-}" ] && [ -f "$BASELINE_REPORT" ]; then baseline=(--baseline "$BASELINE_REPORT"); fi
evaluator report "$RESULTS_DIR/report.json" \
  --junit "$RESULTS_DIR/junit.xml" \
  --markdown "$RESULTS_DIR/comment.md" \
  --html "$RESULTS_DIR/report.html" \
  "${baseline[@]}"
