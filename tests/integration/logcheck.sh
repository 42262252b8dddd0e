#!/bin/bash
#   logcheck.sh - judge the logs of a supervised mesh at the end of a test (sourced, not run)
#   SPDX-License-Identifier: MPL-2.0
#
#   check_mesh_logs SUP_LOG LOG_DIR: fails (returns 1, reasons on stderr)
#   when any log holds a sanitizer report (ASan, LSan, UBSan, TSan), or the
#   supervisor's log shows a replica that exited by itself ("replica
#   exited") or stopped uncleanly ("replica stopped" with a status other
#   than exit 0). Under the ASan+UBSan build a daemon that aborts is
#   restarted by the supervisor, so without this nobody would notice.
#   Exits a test causes on purpose are allowed by VZ_EXPECTED_EXITS: an
#   extended regex matched against the supervisor's log line (default
#   '"status":"signal 9"', i.e. kill -9 by the test).

VZ_SANITIZER_RE='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer|WARNING: ThreadSanitizer'

check_mesh_logs() {
    local sup_log=$1 log_dir=$2 bad=0 hits
    local expected=${VZ_EXPECTED_EXITS:-'"status":"signal 9"'}
    hits=$(grep -HnE "$VZ_SANITIZER_RE" "$sup_log" "$log_dir"/*.log 2>/dev/null)
    if [ -n "$hits" ]; then
        echo "logcheck: sanitizer reports:" >&2
        echo "$hits" | head -n 20 >&2
        bad=1
    fi
    [ -f "$sup_log" ] || { echo "logcheck: no supervisor log $sup_log" >&2; return 1; }
    hits=$(grep -E '"msg":"replica (exited|stopped)"' "$sup_log" |
        grep -v '"msg":"replica stopped".*"status":"exit 0"' | grep -vE "$expected")
    if [ -n "$hits" ]; then
        echo "logcheck: replicas that crashed or stopped uncleanly:" >&2
        echo "$hits" | head -n 20 >&2
        bad=1
    fi
    return $bad
}
