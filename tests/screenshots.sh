#!/usr/bin/env bash
# Regenerates the pages' screenshots in docs/img (the auditor's page and the
# agency console) by running their browser tests against real gateways in
# headless Chromium: the pictures are what the tests saw.
#
#   tests/screenshots.sh
#
# Needs Debian's chromium and chromium-driver (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
XGATE_SCREENSHOTS=docs/img XGATE_REQUIRE_BROWSER=1 \
  cargo test -p xgate --test auditor_page --test agency_console
ls -l docs/img
