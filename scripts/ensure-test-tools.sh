#!/usr/bin/env bash
# Tools the integration tests use besides Docker, installed with apt-get as root on Debian (elsewhere a message
# says what to install):
# * headless Chromium (Debian's `chromium`) renders the judges' HTML reports;
# * PostgreSQL's server programs (Debian's `postgresql`: initdb and pg_ctl in /usr/lib/postgresql/<ver>/bin) let
#   the store's tests start a throwaway cluster of their own. No system-wide service is started for them.
set -euo pipefail

have_postgres() {
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
  local bin
  for bin in /usr/lib/postgresql/*/bin; do
    [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && return 0
  done
  return 1
}

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
have_postgres || missing+=(postgresql)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-test-tools: missing ${missing[*]}; install your distribution's package(s) of that name to run" \
    "the report tests (chromium) and the PostgreSQL store tests (postgresql: initdb, pg_ctl)" >&2
  exit 1
fi
echo "ensure-test-tools: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
# Debian's postgresql package starts its `main` cluster as a service when the package is installed; a policy-rc.d
# that answers 101 ("action forbidden") keeps it down (containers usually have one already; keep theirs).
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  added_policy=1
fi
trap 'if [ "$added_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
apt-get update -q >/dev/null
apt-get install -y -q "${missing[@]}" >/dev/null
