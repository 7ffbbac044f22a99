#!/usr/bin/env bash
# post { cleanup }: remove this build's sibling container; the image stays (tagged by commit, reused).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
set +e
rid="$(run_id 2>/dev/null)"
[ -n "$rid" ] && docker rm --force "eval-$rid" >/dev/null 2>&1
exit 0
