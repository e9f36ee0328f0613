#!/bin/bash
# make test: every test of the module, the real-kernel VM tests and the systemd 262
# interop VM included. Prints one line per test and subtest (so the kernel selftest case
# names show), then go test's package summary; on failure also the output of what failed.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp -t luo-test.XXXXXX)
echo "make test: go test -v ./... (full log: $log)"
LUO_INTEROP=${LUO_INTEROP-1} go test -timeout "${TIMEOUT:-80m}" -v "$@" ./... >"$log" 2>&1
status=$?
grep -E '^\s*--- (PASS|FAIL|SKIP)|^(ok|FAIL|---)\s|^panic:' "$log" | grep -v -E -e '--- PASS: Fuzz[^ ]*/seed#'
if [[ $status -ne 0 ]]; then
  echo
  echo "=== output of the failures (passing tests left out) ==="
  grep -v -E '^\s*(=== (RUN|PAUSE|CONT|NAME)|--- PASS|--- SKIP)' "$log" | tail -n 600
fi
exit "$status"
