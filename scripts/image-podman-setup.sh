#!/usr/bin/env bash
# Make podman usable on this machine for `make image-test`, then prove it can run a container
# runtime at all. Idempotent. Prints one line and exits 1 when podman cannot work here.
#
# crun (podman's default runtime) refuses this machine's rlimits and hybrid cgroups; runc with
# the cgroupfs manager and no default ulimits works (docs/DEPLOYING.md "Verifying the image").
# Those two settings go into /etc/containers/containers.conf only when running as root and only
# when the file does not set them already: a machine whose podman works is left alone.
set -euo pipefail
CONF=/etc/containers/containers.conf

fail() { echo "make image-test: cannot run: $*" >&2; exit 1; }

command -v podman >/dev/null || fail "podman is not installed (scripts/sysdeps.sh podman runc debootstrap)"
command -v runc >/dev/null || fail "runc is not installed (scripts/sysdeps.sh runc)"

if [ "$(id -u)" -eq 0 ]; then
  mkdir -p "$(dirname "$CONF")"
  touch "$CONF"
  # Append a table only if the file has no such table; set a key only if it is absent.
  add_key() {  # TABLE KEY LINE
    local table=$1 key=$2 line=$3
    if grep -Eq "^[[:space:]]*$key[[:space:]]*=" "$CONF"; then
      return 0
    fi
    if grep -Eq "^\[$table\][[:space:]]*$" "$CONF"; then
      sed -i "/^\[$table\][[:space:]]*$/a $line" "$CONF"
    else
      printf '\n[%s]\n%s\n' "$table" "$line" >> "$CONF"
    fi
    echo "image-podman-setup: $CONF: [$table] $line" >&2
  }
  add_key containers default_ulimits 'default_ulimits = []'
  add_key engine cgroup_manager 'cgroup_manager = "cgroupfs"'
fi

if ! out=$(podman --runtime runc info --format '{{.Host.OCIRuntime.Name}}' 2>&1); then
  fail "podman does not work on this machine: $(printf '%s' "$out" | grep -v '^$' | tail -n 1)"
fi
