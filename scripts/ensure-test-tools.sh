#!/usr/bin/env bash
# Tools the integration tests use besides Docker: headless Chromium (Debian's package) renders the judges' HTML
# reports. Installed with apt-get as root on Debian; elsewhere a message says what to install.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-test-tools: chromium is missing; install your distribution's chromium package to run the report tests" >&2
  exit 1
fi
echo "ensure-test-tools: installing chromium with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q chromium >/dev/null
