# Shared by the benchmark scripts (sourced, not run): each case is a separate process measured
# by the OS with GNU time, RUNS runs, and the medians printed as a Markdown table row.

# measure CMD...: one run; prints "wall_seconds peak_rss_kib".
measure() {
  { /usr/bin/time -f "%e %M" "$@" >/dev/null; } 2>&1 | tail -n 1
}

# run NAME CMD...: RUNS runs, prints "NAME median_wall_s median_peak_mib"
run() {
  local name=$1; shift
  local walls=() rsss=()
  for _ in $(seq "$RUNS"); do
    local out
    out=$(measure "$@")
    walls+=("${out% *}"); rsss+=("${out#* }")
  done
  python3 - "$name" "${walls[*]}" "${rsss[*]}" <<'PY'
import statistics, sys
name, walls, rss = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
wall = statistics.median(float(w) for w in walls)
peak = statistics.median(int(r) for r in rss) / 1024
print(f"| {name} | {wall:.2f} s | {peak:.1f} MiB |")
PY
}

# pair NAME CMD... -- BASE_NAME BASE_CMD...: the case and its baseline run alternately, RUNS
# times each, so that both see the same machine; prints a row for each (medians) and the
# median of the per-run ratios of their wall times.
pair() {
  local name=$1 base_name a=() b=() walls=() rsss=() base_walls=() base_rsss=() out
  shift
  while [ "$1" != "--" ]; do a+=("$1"); shift; done
  shift
  base_name=$1
  shift
  b=("$@")
  for _ in $(seq "$RUNS"); do
    out=$(measure "${a[@]}")
    walls+=("${out% *}"); rsss+=("${out#* }")
    out=$(measure "${b[@]}")
    base_walls+=("${out% *}"); base_rsss+=("${out#* }")
  done
  python3 - "$name" "$base_name" "${walls[*]}" "${rsss[*]}" "${base_walls[*]}" "${base_rsss[*]}" <<'PY'
import statistics, sys
name, base, walls, rss, base_walls, base_rss = sys.argv[1:7]
walls, base_walls = [float(w) for w in walls.split()], [float(w) for w in base_walls.split()]
mib = lambda r: statistics.median(int(x) for x in r.split()) / 1024
ratio = statistics.median(w / b for w, b in zip(walls, base_walls))
print(f"| {name} | {statistics.median(walls):.2f} s | {mib(rss):.1f} MiB |")
print(f"| {base} | {statistics.median(base_walls):.2f} s | {mib(base_rss):.1f} MiB |")
print(f"| ratio, run by run (median) | **{ratio:.2f}x** | |")
PY
}
