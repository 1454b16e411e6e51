#!/usr/bin/env bash
# The runtime part of requirements.lock: every pin reachable from pyproject's [project] dependencies.
#
# In: requirements.lock (uv pip compile output, which includes the `dev` extra) and pyproject.toml.
# Out on stdout: the lock's `name==version` lines of the runtime closure, unchanged (no re-resolution,
# no network); `--exclude NAME` leaves a package out (the images install torch from their own index).
# How: uv's `# via` annotations are the lock's dependency edges. A package is runtime when pyproject's
# runtime dependencies name it, or when a runtime package needs it. `crisp (pyproject.toml)` in the
# annotations does not say which extra asked, so the roots come from pyproject itself: pytest, ruff,
# moto, webdataset, uv, kubernetes-validate and whatever only they pull in are left out.
# Usage: infra/runtime-requirements.sh requirements.lock pyproject.toml [--exclude torch] > runtime.txt
set -euo pipefail
exec python3 - "$@" <<'PY'
import re
import sys
import tomllib

args = sys.argv[1:]
exclude = set()
while "--exclude" in args:
    i = args.index("--exclude")
    exclude.add(args[i + 1])
    del args[i : i + 2]
if len(args) != 2:
    sys.exit("usage: runtime-requirements.sh LOCK PYPROJECT [--exclude NAME]...")
lock_path, pyproject_path = args


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


pins: dict[str, str] = {}  # name -> its pin line
needed_by: dict[str, set[str]] = {}  # name -> the packages (or "crisp (pyproject.toml)") that need it
current = None
with open(lock_path, encoding="utf-8") as f:
    for raw in f:
        line = raw.rstrip("\n")
        pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==\S+", line)
        if pin:
            current = norm(pin.group(1))
            pins[current] = line.strip()
            needed_by[current] = set()
            continue
        via = re.match(r"^\s+#\s+(?:via\s+)?(\S.*)$", line)
        if current and via and via.group(1) != "via":
            parent = via.group(1).strip()
            needed_by[current].add(parent if parent.startswith("crisp ") else norm(re.match(r"[A-Za-z0-9._-]+", parent).group(0)))

with open(pyproject_path, "rb") as f:
    project = tomllib.load(f)["project"]
roots = {norm(re.match(r"[A-Za-z0-9._-]+", dep).group(0)) for dep in project["dependencies"]}
missing = sorted(roots - pins.keys())
if missing:
    sys.exit(f"runtime dependencies missing from {lock_path} (run `make lock`): {', '.join(missing)}")

runtime = set(roots)
changed = True
while changed:
    changed = False
    for name, parents in needed_by.items():
        if name not in runtime and parents & runtime:
            runtime.add(name)
            changed = True

excluded = {norm(name) for name in exclude}
for name in sorted(runtime - excluded):
    print(pins[name])
PY
