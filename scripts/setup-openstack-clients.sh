#!/usr/bin/env bash
# Installs the real OpenStack clients (python-openstackclient's `openstack` and openstacksdk) into a
# project-local virtualenv, pinned, for the API scenario tests and for using the API role by hand.
# Idempotent: a second run with the same pins does nothing. Unlike setup-temporal.sh it fails loudly: the
# scenario tests need these exact clients and say to run this script when they are missing.
set -euo pipefail
OPENSTACKCLIENT_VERSION="10.5.0"
OPENSTACKSDK_VERSION="4.22.0"
# tempest (its own venv: its oslo pins are not the clients'): response schemas in test/api-tempest-schemas,
# and scripts/tempest.sh's API run against npm start.
TEMPEST_VERSION="47.0.0"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.openstack/venv"
stamp="$venv/.bootflow-pins"
want="python-openstackclient==$OPENSTACKCLIENT_VERSION openstacksdk==$OPENSTACKSDK_VERSION"

tempest_venv="$root/.openstack/tempest-venv"
tempest_stamp="$tempest_venv/.bootflow-pins"
tempest_want="tempest==$TEMPEST_VERSION"

install_tempest() {
  [ -x "$tempest_venv/bin/tempest" ] && [ "$(cat "$tempest_stamp" 2>/dev/null)" = "$tempest_want" ] && return 0
  [ -x "$tempest_venv/bin/pip" ] || python3 -m venv "$tempest_venv" || { echo "setup-openstack-clients: could not create $tempest_venv (install python3-venv)" >&2; exit 1; }
  if ! "$tempest_venv/bin/pip" install --quiet --disable-pip-version-check "$tempest_want" 2>"$root/.openstack/tempest-pip.log"; then
    echo "setup-openstack-clients: pip could not install $tempest_want (see .openstack/tempest-pip.log)" >&2
    exit 1
  fi
  echo "$tempest_want" >"$tempest_stamp"
  echo "setup-openstack-clients: tempest $TEMPEST_VERSION in $tempest_venv" >&2
}

if [ -x "$venv/bin/openstack" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  install_tempest
  exit 0
fi
command -v python3 >/dev/null 2>&1 || { echo "setup-openstack-clients: python3 not found (install python3 and python3-venv)" >&2; exit 1; }
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv" || { echo "setup-openstack-clients: could not create $venv (install python3-venv)" >&2; exit 1; }
# shellcheck disable=SC2086
if ! "$venv/bin/pip" install --quiet --disable-pip-version-check $want 2>"$root/.openstack/pip.log"; then
  echo "setup-openstack-clients: pip could not install $want (see .openstack/pip.log)" >&2
  exit 1
fi
echo "$want" >"$stamp"
echo "setup-openstack-clients: $("$venv/bin/openstack" --version 2>&1) and openstacksdk $OPENSTACKSDK_VERSION in $venv" >&2
install_tempest
