#!/usr/bin/env bash
# Installs the Debian packages sipd's tests talk to: sipp (sip-tester),
# redis-server and baresip (a real softphone), and jq and curl for the
# compose test. It does nothing when they
# are already there, and only reports what is missing when not run as root.
set -euo pipefail

need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v baresip >/dev/null 2>&1 || need+=(baresip-core)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v curl >/dev/null 2>&1 || need+=(curl)

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-test-deps: missing packages: ${need[*]} (run as root, or apt-get install them)" >&2
	exit 0
fi
echo "install-test-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The packaged redis-server service is not needed: tests start their own.
if command -v systemctl >/dev/null 2>&1; then
	systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
