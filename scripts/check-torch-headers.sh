#!/usr/bin/env bash
# Compiles every torch-facing source of a configured build against the
# headers of the oldest LibTorch cpt-train supports (torch 2.11.0, the GPU
# machines' version; setup.sh unpacks them into $CPT_VENV/oldest-torch), with
# the build's own flags and -fsyntax-only, so that code which only builds on
# the pinned newer torch fails here and not first on a GPU machine.
#
#   scripts/check-torch-headers.sh [BUILD_DIR [SOURCE...]]
# BUILD_DIR defaults to build; SOURCE... limits the check to the sources
# whose path contains one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
venv=${CPT_VENV:-$HOME/.cache/cpt-train/venv}
oldest=$venv/oldest-torch
if [[ ! -f $build/compile_commands.json ]]; then
  echo "check-torch-headers: no $build/compile_commands.json; run scripts/build.sh first" >&2
  exit 1
fi
if [[ ! -d $oldest/torch/include ]]; then
  echo "check-torch-headers: no headers in $oldest/torch/include; run scripts/setup.sh" >&2
  exit 1
fi
python=$(sed -n 's/^CPT_PYTHON:FILEPATH=//p' "$build/CMakeCache.txt")
torch_include=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include"))')

exec python3 - "$build/compile_commands.json" "$torch_include" "$oldest/torch/include" "$(cat "$oldest/version")" "$@" <<'PY'
import concurrent.futures, json, os, shlex, subprocess, sys, time

commands, pinned, oldest, oldest_version = sys.argv[1:5]
only = sys.argv[5:]
jobs = []
for entry in json.load(open(commands)):
    if pinned not in entry["command"] or entry["file"].endswith("cmake_pch.hxx.cxx"):
        continue
    if only and not any(part in entry["file"] for part in only):
        continue
    args, out = shlex.split(entry["command"]), []
    skip = 0
    for i, a in enumerate(args):
        if skip:
            skip -= 1
        elif a in ("-o", "-MT", "-MF") or (a == "-include" and args[i + 1].endswith("cmake_pch.hxx")):
            skip = 1  # the precompiled header was built from the pinned torch
        elif a in ("-MD", "-Winvalid-pch"):
            pass
        elif a == "-c":
            out.append("-fsyntax-only")
        else:
            out.append(a.replace(pinned, oldest))
    jobs.append((entry["directory"], os.path.relpath(entry["file"]), out))


def check(job):
    directory, name, args = job
    run = subprocess.run(args, cwd=directory, capture_output=True, text=True)
    return name, run.returncode, run.stderr


start, failed = time.time(), []
with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
    for name, code, err in pool.map(check, jobs):
        if code != 0:
            errors = [line for line in err.splitlines() if "error" in line]
            failed.append(name)
            print(f"check-torch-headers: {name} does not compile against {oldest_version}:", file=sys.stderr)
            print("\n".join(errors[:10] or err.splitlines()[-10:]), file=sys.stderr)
print(f"check-torch-headers: {len(jobs) - len(failed)} of {len(jobs)} torch-facing sources compile against "
      f"{oldest_version} headers ({time.time() - start:.0f} s)")
sys.exit(1 if failed or not jobs else 0)
PY
