#!/usr/bin/env bash
# Build the one image (operator + both services), tagged by content, and ship it somewhere.
#   hack/image.sh tag    # print the content tag: <git short sha>, or <sha>-dirty-<hash> when
#                        # the files that go into the image differ from the commit
#   hack/image.sh build  # docker build -t $IMAGE
#   hack/image.sh push   # build, then docker push $IMAGE (IMAGE must name a registry)
#   hack/image.sh kind   # build, then kind load docker-image $IMAGE into $KIND_CLUSTER
# IMAGE defaults to bookstore:<content tag>; an IMAGE without a tag gets the content tag.
# No public image is published: every cluster runs an image built here.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the Dockerfile copies into the image (see .dockerignore): only these change its content.
readonly INPUTS=(Dockerfile .dockerignore pyproject.toml README.md services operator)
readonly KIND_CLUSTER="${KIND_CLUSTER:-bookstore}"

die() {
    echo "image: $*" >&2
    exit 1
}

content_tag() {
    if ! git rev-parse --git-dir >/dev/null 2>&1; then
        # Not a git checkout (a tarball): hash the inputs themselves.
        echo "src-$(find "${INPUTS[@]}" -type f ! -path '*/__pycache__/*' -print0 | sort -z \
            | xargs -0 sha256sum | sha256sum | cut -c1-12)"
        return
    fi
    local sha changed
    sha="$(git rev-parse --short=12 HEAD)"
    changed="$(git status --porcelain --untracked-files=all -- "${INPUTS[@]}")"
    if [[ -z "$changed" ]]; then
        echo "$sha"
        return
    fi
    # Dirty: the tag must still change with every edit, or a rebuild would not roll the pods.
    local digest
    digest="$({
        git diff HEAD --binary -- "${INPUTS[@]}"
        git ls-files --others --exclude-standard -z -- "${INPUTS[@]}" | xargs -0 -r sha256sum
    } | sha256sum | cut -c1-8)"
    echo "$sha-dirty-$digest"
}

# IMAGE as given, with the content tag appended when it names no tag.
image_ref() {
    local image="${IMAGE:-bookstore}"
    if [[ "${image##*/}" != *:* ]]; then
        image="$image:$(content_tag)"
    fi
    echo "$image"
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' is not on PATH: $2"
}

build() {
    local image="$1"
    need docker "install Docker to build the image"
    echo "image: building $image"
    docker build -t "$image" .
}

case "${1:-}" in
    tag) content_tag ;;
    ref) image_ref ;;
    build) build "$(image_ref)" ;;
    push)
        image="$(image_ref)"
        [[ "$image" == */* ]] \
            || die "IMAGE=$image names no registry: use IMAGE=registry.example.com/bookstore[:tag]"
        build "$image"
        echo "image: pushing $image"
        docker push "$image"
        echo "image: pushed; install with --set image.repository=${image%:*} --set image.tag=${image##*:}"
        ;;
    kind)
        image="$(image_ref)"
        need kind "install kind, or push the image instead (make image-push IMAGE=...)"
        kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER" \
            || die "no kind cluster '$KIND_CLUSTER' (set KIND_CLUSTER, or run make demo)"
        build "$image"
        echo "image: loading $image into kind cluster '$KIND_CLUSTER'"
        kind load docker-image "$image" --name "$KIND_CLUSTER"
        ;;
    *) die "usage: $0 tag|ref|build|push|kind" ;;
esac
