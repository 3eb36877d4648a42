#!/usr/bin/env python3
"""Give pip inside `podman build` this machine's pip configuration, without naming any index.

Usage: image-pip-config.py OUT_FILE [PIP_PYTHON]

Writes OUT_FILE: the pip configuration this machine's pip uses, merged as pip merges it (the
global, user and site files ``pip config list -v`` names, then the PIP_* environment, later
ones winning), and prints one ``-v SRC:DST:ro`` argument per line for ``podman build``: OUT_FILE
mounted at /etc/pip.conf (a global location pip reads inside the build), and every local path
the configuration refers to (CA bundle, constraints, find-links directories, file:// indexes)
mounted read-only under BUILD_DIR, the configuration rewritten to name those mount points.
Nothing is copied into the image: the bind mounts exist only while each RUN step runs.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

BUILD_PIP_CONF = "/etc/pip.conf"
INDEX_KEYS = frozenset({"index-url", "extra-index-url"})
# Mount points of the files the configuration names. Each RUN step's bind mounts leave an empty
# mount point behind in that layer; under /tmp they stay out of sight (every deployment mounts a
# tmpfs there), and only an empty /etc/pip.conf remains in the image.
BUILD_DIR = "/tmp/openasr-build-pip"


def config_files(python: str) -> list[Path]:
    """The files pip tries, in its load order (global, user, site), as `pip config -v` says."""
    out = subprocess.run(
        [python, "-m", "pip", "config", "list", "-v"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [Path(p) for p in re.findall(r"will try loading '([^']+)'", out)]


def merged(files: list[Path], environ: dict[str, str]) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    for path in files:
        if path.is_file():
            parser.read(path)
    for name, value in environ.items():
        # pip reads PIP_<OPTION> as the option for every command (PIP_CONFIG_FILE is a file)
        if name.startswith("PIP_") and name != "PIP_CONFIG_FILE" and value:
            if not parser.has_section("global"):
                parser.add_section("global")
            parser.set("global", name[4:].lower().replace("_", "-"), value)
    return parser


def mount_local_paths(parser: configparser.RawConfigParser) -> dict[Path, str]:
    """Rewrite every value naming an existing local path (plain paths and file:// URLs) to a
    mount point under BUILD_DIR; returns host path -> mount point. A file:// index is mounted
    with its parent: PEP 503 pages link to ``../../files/...``."""
    mounts: dict[Path, str] = {}

    def target(path: Path) -> str:
        if path not in mounts:
            mounts[path] = f"{BUILD_DIR}/{len(mounts)}-{path.name or 'root'}"
        return mounts[path]

    for section in parser.sections():
        for key, value in parser.items(section):
            words = []
            for word in value.split():
                url = word.startswith("file://")
                local = unquote(urlsplit(word).path) if url else word
                if local.startswith("/") and os.path.exists(local):
                    path = Path(local)
                    if url and key in INDEX_KEYS:
                        word = f"file://{target(path.parent)}/{path.name}"
                    elif url:
                        word = f"file://{target(path)}"
                    else:
                        word = target(path)
                words.append(word)
            parser.set(section, key, " ".join(words))
    return mounts


def main() -> None:
    out = Path(sys.argv[1])
    python = sys.argv[2] if len(sys.argv) > 2 else sys.executable
    parser = merged(config_files(python), dict(os.environ))
    mounts = mount_local_paths(parser)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        parser.write(handle)
    print(f"-v={out}:{BUILD_PIP_CONF}:ro")
    for path, mount_point in mounts.items():
        print(f"-v={path.resolve()}:{mount_point}:ro")


if __name__ == "__main__":
    main()
