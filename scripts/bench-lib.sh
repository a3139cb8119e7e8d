# Shared by the benchmark scripts (sourced, not run): each case is a separate process measured
# by the OS with GNU time, RUNS runs, and the medians printed as a Markdown table row.

# run NAME CMD...: RUNS runs, prints "NAME median_wall_s median_peak_mib"
run() {
  local name=$1; shift
  local walls=() rsss=()
  for _ in $(seq "$RUNS"); do
    local out
    out=$( { /usr/bin/time -f "%e %M" "$@" >/dev/null; } 2>&1 | tail -n 1)
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
