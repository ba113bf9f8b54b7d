#!/usr/bin/env bash
# Layer compression, measured (issue 21): conda-docker's streamed parallel gzip and its zstd
# (the zstd crate's multithreaded encoder, job size pinned) against gzp, pigz and the zstd
# command line, at the same levels and thread counts, on a real tar of MB megabytes (default
# 500: the first bytes of `tar c /usr/lib`). Each reads the tar from stdin (in the page
# cache) and writes to a pipe counted by `wc -c`; the median of REPS runs (default 3) is
# printed in MB/s, with the size as a ratio to pigz's at that level (below 1: smaller).
#
# Usage: scripts/bench.d/compress.sh   Environment: MB, REPS, THREADS (default: nproc),
#   TAR (a tar to use instead), CARGO_TARGET_DIR (default /tmp/target-compress-bench).
# Needs: pigz, zstd, a Rust toolchain (the measured compressors are built in release, apart
# from conda-docker: scripts/bench.d/compress/, which includes src/image/gzip.rs as it is).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mb=${MB:-500}
reps=${REPS:-3}
threads=${THREADS:-$(nproc)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-compress-bench}
cargo build --release --quiet --manifest-path "$here/compress/Cargo.toml"
bench=$CARGO_TARGET_DIR/release/compress-bench
tar=${TAR:-$work/input.tar}
if [ -z "${TAR:-}" ]; then
  (tar cf - -C / usr/lib 2>/dev/null || true) | head -c $((mb * 1000 * 1000)) > "$tar"
fi
bytes=$(stat -c %s "$tar")
cat "$tar" > /dev/null

# Prints "seconds size" of the median run of the command (stdin: the tar).
measure() {
  local runs=() size=0
  for _ in $(seq "$reps"); do
    local start end
    start=$(date +%s.%N)
    size=$("$@" < "$tar" | wc -c)
    end=$(date +%s.%N)
    runs+=("$(echo "$end - $start" | bc -l)")
  done
  printf '%s\n' "${runs[@]}" | sort -g | sed -n "$(( (reps + 1) / 2 ))p" | tr '\n' ' '
  echo "$size"
}

printf 'input: %s bytes, %s threads, median of %s\n' "$bytes" "$threads" "$reps"
printf '%-28s %10s %12s %14s\n' compressor MB/s bytes 'size/pigz'
for level in 1 3; do
  read -r _ pigz_size < <(measure pigz -"$level" -p "$threads" -c)
  row() {
    local name=$1; shift
    read -r secs size < <(measure "$@")
    printf '%-28s %10.1f %12d %14.3f\n' "$name" "$(echo "$bytes / 1000000 / $secs" | bc -l)" \
      "$size" "$(echo "$size / $pigz_size" | bc -l)"
  }
  row "conda-docker gzip -$level" "$bench" ours-gzip "$level" "$threads"
  row "gzp -$level" "$bench" gzp "$level" "$threads"
  row "pigz -$level -p$threads" pigz -"$level" -p "$threads" -c
  row "conda-docker zstd -$level" "$bench" ours-zstd "$level" "$threads"
  row "zstd -$level -T$threads" zstd -"$level" -T"$threads" -c
done
