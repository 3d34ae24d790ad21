#!/usr/bin/env bash
# README's first command, cold, before and after "llama.cpp compiled once at set-up" (issue #13),
# in one run:
#
#   benchmarks/bench_setup.sh BEFORE_REV AFTER_REV [WORKDIR]
#
# AFTER_REV may be "file:PATH": this checkout's HEAD with PATH as ./bootstrap (to measure a change
# before committing it). Each run gets a fresh clone, a clean GGUFROPE_HOME and an empty pip cache
# (pip would otherwise reuse a llama-cpp-python wheel it compiled earlier), and runs
#   ./bootstrap && .venv/bin/ggufrope run demo --prompt "..."
# under /usr/bin/time -v. Packages this machine's pip finds locally (torch, /opt/wheels) stay local. Runs are niced (this machine is shared: the 2 cores also
# serve other work), so wall time depends on the load; user+sys CPU time is printed beside it,
# with the load average at start and end. The after-clone is kept: its .venv is a set-up from
# scratch to run tests in.
set -euo pipefail
BEFORE=${1:?before revision}
AFTER=${2:?after revision or "worktree"}
WORK=${3:-/tmp/ggufrope-bench-setup}
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PROMPT="Explain RoPE scaling in one sentence."
ONLY=${ONLY:-}   # ONLY=before or ONLY=after runs one of the two (keeps the other's results in WORKDIR)
mkdir -p "$WORK"

run() {  # label rev
  local label=$1 rev=$2 dir="$WORK/$1" home="$WORK/$1-home"
  if [ -n "$ONLY" ] && [ "$ONLY" != "$label" ]; then return 0; fi
  rm -rf "$dir" "$home" "$WORK/$label-pip-cache" "$WORK/$label.log" "$WORK/$label.time"
  git clone -q "$REPO" "$dir"
  if [ "${rev#file:}" != "$rev" ]; then
    cp "${rev#file:}" "$dir/bootstrap"
    rev="$(git -C "$REPO" rev-parse --short HEAD)+bootstrap from ${rev#file:}"
  else
    git -C "$dir" checkout -q "$rev"
  fi
  local load0; load0=$(cut -d' ' -f1-3 /proc/loadavg)
  ( cd "$dir" && GGUFROPE_HOME="$home" PIP_CACHE_DIR="$WORK/$label-pip-cache" nice -n 19 /usr/bin/time -v -o "$WORK/$label.time" \
      bash -c "./bootstrap && .venv/bin/ggufrope run demo --prompt \"$PROMPT\"" ) >"$WORK/$label.log" 2>&1 \
    || { echo "$label: failed, see $WORK/$label.log" >&2; tail -20 "$WORK/$label.log" >&2; return 1; }
  local load1; load1=$(cut -d' ' -f1-3 /proc/loadavg)
  local wall user sys
  wall=$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$WORK/$label.time")
  user=$(sed -n 's/.*User time (seconds): //p' "$WORK/$label.time")
  sys=$(sed -n 's/.*System time (seconds): //p' "$WORK/$label.time")
  local compiled builds
  compiled=$(find "$home/wheels" -maxdepth 1 -name 'llama_cpp_python-*.whl' | wc -l)   # a compiled llama-cpp-python
  builds=$(find "$home/builds" -mindepth 1 -maxdepth 1 -type d | wc -l)                # ggufrope llama.cpp builds
  printf '%s (%s): wall %s, CPU %.0f s (user %s + sys %s); llama.cpp compiles: %d llama-cpp-python + %d ggufrope; load %s -> %s\n' \
    "$label" "$rev" "$wall" "$(echo "$user + $sys" | bc)" "$user" "$sys" "$compiled" "$builds" "$load0" "$load1"
}

echo "bench_setup: $(date -u +%FT%TZ), $(nproc) cores, niced; README's first command, cold"
run after "$AFTER"     # first: a broken change fails before the long run
run before "$BEFORE"
[ "$ONLY" = before ] || echo "answer (after): $(grep -v '^bootstrap:\|^note:\|^build:' "$WORK/after.log" | tail -n 3 | tr '\n' ' ')"
