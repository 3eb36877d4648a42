#!/usr/bin/env bash
# Build the OpenASR image with podman as users build it (the Dockerfile unchanged), here:
#   scripts/image-build.sh TAG BASE_IMAGE
# BASE_IMAGE comes from scripts/image-base.sh. pip inside the build sees this machine's pip
# configuration and the files it names (CA bundle, constraints, local indexes) through read-only
# bind mounts (scripts/image-pip-config.py); none of them ends up in the image. Prints the build
# time in seconds to .make/image-test/build_s. OPENASR_BUILD_CONTEXT: another build context
# (default: this checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=$1
BASE=${2:?usage: image-build.sh TAG BASE_IMAGE}
PY=${PY:-.venv/bin/python}
MODEL=${OPENASR_MODEL:-tiny.en}
MODEL_TYPE=${OPENASR_MODEL_TYPE:-f16}
CONTEXT=${OPENASR_BUILD_CONTEXT:-.}
# Every layer is rebuilt and no intermediate image is kept: the result is what a user's first
# build gives, whatever earlier builds left on this machine (buildah's layer cache ignores
# the -v mounts, so a cached layer could carry another build's mount points), and repeated
# runs do not pile up layers. OPENASR_BUILD_CACHE=1 reuses layers (quicker while iterating).
cache=(--no-cache --layers=false)
[ "${OPENASR_BUILD_CACHE:-}" = 1 ] && cache=(--layers)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mapfile -t mounts < <("$PY" scripts/image-pip-config.py "$tmp/pip.conf" "$PY")
mkdir -p .make/image-test
echo "image-build: podman build $TAG (BASE_IMAGE=$BASE, MODEL=$MODEL, MODEL_TYPE=$MODEL_TYPE)" >&2
start=$(date +%s)
# chroot isolation: the only one that works without a daemon on this machine kind; host
# network: the build reaches the package registries the machine reaches; docker format: OCI
# drops HEALTHCHECK.
if podman image exists "$TAG"; then podman rmi --force "$TAG" >/dev/null; fi
podman build --isolation=chroot --network=host --format=docker \
  "${cache[@]}" "${mounts[@]}" \
  --build-arg "BASE_IMAGE=$BASE" --build-arg "MODEL=$MODEL" --build-arg "MODEL_TYPE=$MODEL_TYPE" \
  -t "$TAG" -f "$CONTEXT/Dockerfile" "$CONTEXT" > .make/image-test/build.log 2>&1 \
  || { tail -n 40 .make/image-test/build.log >&2; echo "make image-test: the image build failed (.make/image-test/build.log)" >&2; exit 1; }
echo $(( $(date +%s) - start )) > .make/image-test/build_s
echo "image-build: built $TAG in $(cat .make/image-test/build_s) s" >&2
