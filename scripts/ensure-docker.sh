#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`.
# On a fresh Debian machine as root: install Debian's docker.io (never pulls an image) and start dockerd in the
# background in its own session. Elsewhere: say what to install and stop.
set -euo pipefail

wait_for_engine() {
  local waited=0
  until docker info >/dev/null 2>&1; do
    if [ "$waited" -ge "${1:-60}" ]; then return 1; fi
    sleep 1; waited=$((waited + 1))
  done
}

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  cat >&2 <<'MSG'
No Docker engine answers `docker info`, and this script can only install one as root on Debian/Ubuntu.
Install Docker Engine (https://docs.docker.com/engine/install/) or your distribution's docker.io package,
start it, make sure your user may use it (`docker info` works), then run this command again.
Teams without Docker can self-check with `harness check --sandbox process` (no isolation).
MSG
  exit 1
fi

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
if [ "${#need[@]}" -gt 0 ]; then
  echo "ensure-docker: installing ${need[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${need[@]}" >/dev/null
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "ensure-docker: starting dockerd in the background (log: /var/log/harness-dockerd.log)" >&2
  setsid nohup dockerd >/var/log/harness-dockerd.log 2>&1 < /dev/null &
fi
if ! wait_for_engine 90; then
  echo "ensure-docker: dockerd did not answer within 90 s; see /var/log/harness-dockerd.log" >&2
  tail -n 20 /var/log/harness-dockerd.log >&2 || true
  exit 1
fi
echo "ensure-docker: engine ready ($(docker info --format '{{.ServerVersion}} {{.Driver}} cgroup v{{.CgroupVersion}}'))" >&2
