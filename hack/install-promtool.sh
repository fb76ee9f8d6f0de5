#!/usr/bin/env bash
# Make promtool (Prometheus's rule checker) available for `make test`: the one on PATH, else
# Debian's `prometheus` package (it ships /usr/bin/promtool) when running as root, else fail
# saying how to get it. Idempotent: a promtool that already runs is kept.
set -euo pipefail

die() {
    echo "install-promtool: $*" >&2
    exit 1
}

hint="install Debian's prometheus package (sudo apt-get install -y prometheus: it ships promtool), \
or put promtool from https://prometheus.io/download/ on PATH, or set PROMTOOL=/path/to/promtool"

if [[ -n "${PROMTOOL:-}" ]]; then
    [[ -x "$PROMTOOL" ]] || die "PROMTOOL=$PROMTOOL is not an executable file"
    "$PROMTOOL" --version 2>&1 | head -n1
    exit 0
fi

if command -v promtool >/dev/null 2>&1; then
    promtool --version 2>&1 | head -n1
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    die "promtool is not on PATH and this is not root, so it cannot be installed here: $hint"
fi
command -v apt-get >/dev/null 2>&1 || die "promtool is not on PATH and there is no apt-get: $hint"

echo "install-promtool: promtool not on PATH; installing Debian's prometheus package" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || die "apt-get update failed: $hint"
apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    || die "apt-get install prometheus failed: $hint"
command -v promtool >/dev/null 2>&1 || die "the prometheus package installed no promtool: $hint"
promtool --version 2>&1 | head -n1
