#!/bin/sh
# Installs the Debian 12 packages latchkey builds and tests with, when any is missing.
# Usage: tools/deps.sh [--dev]   (--dev adds what `make bench` and `make fuzz` use)
set -eu

pkgs="build-essential pkg-config libcurl4-openssl-dev libjansson-dev libmicrohttpd-dev \
libsodium-dev libssl-dev libyaml-dev libpq-dev check curl openssl postgresql python3 \
python3-cryptography python3-hvac python3-kubernetes python3-yaml python3-jsonschema \
prometheus"
if [ "${1:-}" = "--dev" ]; then
	pkgs="$pkgs nginx-light clang libclang-rt-14-dev"
fi

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
		echo "tools/deps.sh: missing Debian packages:$missing (run as root or install them)" >&2
		exit 1
	fi
else
	SUDO=
fi
echo "tools/deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
