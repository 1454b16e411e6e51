"""Fixtures of the infra/ checks: the repository's wiring file, its version and the compose tool."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (the subset compose and scripts/stack.py both read)."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    return read_env_file(INFRA / "stack.env")


@pytest.fixture(scope="session")
def version() -> str:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


@pytest.fixture(scope="session")
def docker_compose() -> str:
    """The docker-compose executable (Debian's v1: `config` needs no daemon), installed when missing."""
    found = shutil.which("docker-compose")
    if found is None:
        done = subprocess.run(
            ["bash", str(REPO / "scripts" / "ensure_docker_compose.sh")], capture_output=True, text=True
        )
        found = shutil.which("docker-compose")
        if found is None:
            pytest.skip(f"docker-compose is missing and could not be installed: {done.stderr.strip()}")
    return found
