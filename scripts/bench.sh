#!/usr/bin/env bash
# Times a cold (empty cache) and a warm build of the largest runnable environment of the
# conda-forge fixture channel, and prints each beside `tar cf` of the same installed tree.
# Usage: scripts/bench.sh [CHANNEL]   (default: ../shared/channels/conda-forge-linux-64, else demo/channel)
set -euo pipefail
cd "$(dirname "$0")/.."

channel=${1:-../shared/channels/conda-forge-linux-64}
specs=(bzip2 zstd openssl libxml2 libarchive tk ncurses krb5 tzdata ca-certificates)
if [ ! -d "$channel" ]; then
  channel=demo/channel
  specs=(bzip2 zstd openssl ncurses ca-certificates)
fi
runs=${RUNS:-5}

cargo build --release --quiet
bin=target/release/conda-docker
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
build() { "$bin" build -q -b docker-archive:demo/base.tar -c "$channel" -o "$work/out.tar" --cache-dir "$1" "${specs[@]}" >/dev/null; }

cold=(); warm=(); tarred=()
for i in $(seq "$runs"); do
  rm -rf "$work/cache" "$work/out.tar"
  t0=$(now); build "$work/cache"; t1=$(now)
  cold+=("$(echo "$t1 - $t0" | bc)")
  rm -f "$work/out.tar"
  t0=$(now); build "$work/cache"; t1=$(now)
  warm+=("$(echo "$t1 - $t0" | bc)")
done

# The installed tree: every added layer of the image, unpacked.
mkdir -p "$work/x" "$work/tree"
tar xf "$work/out.tar" -C "$work/x"
for layer in $(jq -r '.[0].Layers[1:][]' "$work/x/manifest.json"); do tar xf "$work/x/$layer" -C "$work/tree"; done
size=$(du -sb "$work/tree" | cut -f1)
for i in $(seq "$runs"); do
  t0=$(now); tar cf "$work/ref.tar" -C "$work/tree" .; t1=$(now)
  tarred+=("$(echo "$t1 - $t0" | bc)")
done

# Pushing to a local registry (if Debian's docker-registry is installed), each run into a fresh
# registry: `skopeo copy` of the same image from its docker-archive (the reference), then
# conda-docker with an empty blob cache (cold), then again (warm: nothing compressed or uploaded).
push_lines=""
if command -v docker-registry >/dev/null && command -v skopeo >/dev/null; then
  pcold=(); pwarm=(); pskopeo=()
  for i in $(seq "$runs"); do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s/reg%s}}\nhttp: {addr: 127.0.0.1:%s}\n' "$work" "$i" "$port" > "$work/reg.yml"
    docker-registry serve "$work/reg.yml" >/dev/null 2>&1 &
    reg_pid=$!
    for _ in $(seq 50); do curl -s "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
    t0=$(now); skopeo copy -q --dest-tls-verify=false "docker-archive:$work/out.tar" "docker://127.0.0.1:$port/skopeo:1" >/dev/null; t1=$(now)
    pskopeo+=("$(echo "$t1 - $t0" | bc)")
    rm -rf "$work/cache/oci-v1"
    t0=$(now); "$bin" build -q -b docker-archive:demo/base.tar -c "$channel" -o "docker://127.0.0.1:$port/cold:1" --cache-dir "$work/cache" "${specs[@]}" >/dev/null; t1=$(now)
    pcold+=("$(echo "$t1 - $t0" | bc)")
    t0=$(now); "$bin" build -q -b docker-archive:demo/base.tar -c "$channel" -o "docker://127.0.0.1:$port/cold:1" --cache-dir "$work/cache" "${specs[@]}" >/dev/null; t1=$(now)
    pwarm+=("$(echo "$t1 - $t0" | bc)")
    kill "$reg_pid"; wait "$reg_pid" 2>/dev/null || true
  done
  pc=$(printf '%s\n' "${pcold[@]}" | median); pw=$(printf '%s\n' "${pwarm[@]}" | median); ps=$(printf '%s\n' "${pskopeo[@]}" | median)
  push_lines=$(printf 'skopeo copy archive->registry (reference) %7.3f   1.0\nbuild+push, cold blob cache   %7.3f   %.1f\nbuild+push, warm blob cache   %7.3f   %.1f\n' \
    "$ps" "$pc" "$(echo "$pc / $ps" | bc -l)" "$pw" "$(echo "$pw / $ps" | bc -l)")
fi

c=$(printf '%s\n' "${cold[@]}" | median); w=$(printf '%s\n' "${warm[@]}" | median); r=$(printf '%s\n' "${tarred[@]}" | median)
echo "environment: ${specs[*]} from $channel ($(( size / 1000000 )) MB installed, $(jq '.[0].Layers | length' "$work/x/manifest.json") layers)"
printf 'median of %d runs     seconds   ratio to tar cf\n' "$runs"
printf 'tar cf (reference)    %7.3f   1.0\n' "$r"
printf 'conda-docker cold     %7.3f   %.1f\n' "$c" "$(echo "$c / $r" | bc -l)"
printf 'conda-docker warm     %7.3f   %.1f\n' "$w" "$(echo "$w / $r" | bc -l)"
if [ -n "$push_lines" ]; then
  printf '\npush to a local registry, median of %d runs   seconds   ratio to skopeo copy\n%s\n' "$runs" "$push_lines"
fi
