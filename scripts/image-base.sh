#!/usr/bin/env bash
# Print the base image for `make image-test`'s build (the Dockerfile's BASE_IMAGE argument).
#
# The official base (the Dockerfile's default) when podman has it or can pull it; otherwise a
# stand-in made here from Debian packages: debootstrap (minbase, bookworm like the official
# image) with python3, python3-venv, python-is-python3 and ca-certificates (as the official
# image has), imported with `podman import` and
# cached under a tag that changes with this script. Its Python is Debian's 3.11, not 3.11.7:
# good for testing the image, not for shipping it (docs/DEPLOYING.md).
#
# The Debian mirror and apt settings are this machine's own (read from its apt configuration at
# run time), so the stand-in's apt-get reaches what the machine reaches.
set -euo pipefail
cd "$(dirname "$0")/.."

OFFICIAL=${OFFICIAL_BASE_IMAGE:-python:3.11.7-slim-bookworm}
SUITE=bookworm
TAG="localhost/openasr-test-base:$SUITE-$(cksum < "$0" | cut -d' ' -f1)"

log() { echo "image-base: $*" >&2; }

if [ -z "${OPENASR_FORCE_LOCAL_BASE:-}" ]; then
  if podman image exists "$OFFICIAL"; then echo "$OFFICIAL"; exit 0; fi
  if pull_log=$(timeout 300 podman pull -q "$OFFICIAL" 2>&1); then echo "$OFFICIAL"; exit 0; fi
  log "cannot pull $OFFICIAL ($(printf '%s' "$pull_log" | tail -n 1 | cut -c1-160))"
fi
if podman image exists "$TAG"; then
  log "using the cached stand-in $TAG"
  echo "$TAG"; exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "make image-test: cannot run: building the stand-in base needs root (debootstrap)" >&2; exit 1; }

# This machine's Debian sources for $SUITE*: "URI SUITE" lines (one-line and deb822 formats).
sources=$(python3 - "$SUITE" <<'PY'
import glob, sys
suite = sys.argv[1]
found = []
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        words = [w for w in line.split("#")[0].split() if not w.startswith("[")]
        if len(words) >= 3 and words[0] == "deb" and words[2].startswith(suite):
            found.append((words[1], words[2]))
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in open(path).read().split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line and not line.startswith(("#", " ")) and ":" in line:
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.split()
        if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"]) != ["no"]:
            for uri in fields.get("uris", []):
                found.extend((uri, s) for s in fields.get("suites", []) if s.startswith(suite))
for uri, s in dict.fromkeys(found):
    print(uri, s)
PY
)
mirror=$(printf '%s\n' "$sources" | awk -v s="$SUITE" '$2 == s {print $1; exit}')
[ -n "$mirror" ] || { echo "make image-test: cannot run: no Debian $SUITE source in /etc/apt to debootstrap from" >&2; exit 1; }

root=$(mktemp -d /var/tmp/openasr-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
log "debootstrap $SUITE (minbase + python3) into $root"
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
  "$SUITE" "$root" "$mirror" > "$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# The same sources and Acquire settings (e.g. no Valid-Until check on a snapshot mirror) as
# this machine, so `apt-get update` in the Dockerfile works inside the stand-in.
printf '%s\n' "$sources" | awk '{print "deb " $1 " " $2 " main"}' > "$root/etc/apt/sources.list"
apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy|https?::CaInfo) ' \
  > "$root/etc/apt/apt.conf.d/99openasr-host" || true
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -cf - . | podman import -q --change 'ENV LANG=C.UTF-8' - "$TAG" >/dev/null
log "built $TAG"
echo "$TAG"
