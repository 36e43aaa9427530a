#!/usr/bin/env bash
# `make bench-compare`: aedet and PyTorch (bench/torch_peer.py) on the same
# model, batch and thread count, one process per size and side, then ratios:
#   train 256x256x3 b32 ratio 1.23x   images/s, aedet over torch (>1: aedet faster)
#   mem 256x256x3 b32 ratio 0.40x     peak RSS, aedet over torch (<1: aedet smaller)
# and the machine's float32 GEMM peak at the same thread count (OpenBLAS sgemm,
# 2048^3, measured by each aedet process) with each aedet mode's GFLOP/s as a
# fraction of it. aedet's output
# (tee'd above the ratios) has the per-layer time breakdown as # lines.
# Environment: THREADS (default: all cores), SECONDS_PER_RUN (default 3),
# SIZES (default "32x32x1 256x256x3"), BATCH (32), PYTHON (/usr/bin/python3),
# BENCH_BIN. PyTorch runs with jemalloc preloaded (decay off, transparent huge
# pages, as aedet asks for its own big buffers) when installed.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BENCH_BIN:-build/release/bench/bench_model}
python=${PYTHON:-/usr/bin/python3}
threads=${THREADS:-$(nproc)}
seconds=${SECONDS_PER_RUN:-3}
batch=${BATCH:-32}
sizes=${SIZES:-"32x32x1 256x256x3"}
if [ ! -x "$bin" ]; then
    echo "bench/compare.sh: $bin is missing; build it with: make $bin" >&2
    exit 1
fi
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
peer_env=(OPENBLAS_NUM_THREADS=1)
if [ -e "$jemalloc" ]; then
    peer_env+=(LD_PRELOAD="$jemalloc" MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1,thp:always)
    allocator="jemalloc (decay off, thp:always)"
else
    allocator="glibc malloc (libjemalloc2 not installed: apt-get install libjemalloc2)"
fi
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $threads threads, batch $batch"
echo "# torch allocator: $allocator"

ours=$(mktemp) peer=$(mktemp)
trap 'rm -f "$ours" "$peer"' EXIT
for size in $sizes; do
    OPENBLAS_NUM_THREADS=1 "$bin" --threads "$threads" --seconds "$seconds" --batch "$batch" \
        --size "$size" | tee -a "$ours"
    env "${peer_env[@]}" "$python" bench/torch_peer.py --threads "$threads" \
        --seconds "$seconds" --batch "$batch" --size "$size" | sed 's/^#/# torch:/' | tee -a "$peer"
done

echo "# ratios: images/s aedet/torch (>1: aedet faster); peak RSS aedet/torch (<1: aedet smaller)"
awk '
    FNR == NR { if ($1 !~ /^#/ && NF == 5) ours[$1 " " $2 " " $3 " " $4] = $5; next }
    $1 !~ /^#/ && NF == 5 {
        key = $1 " " $2 " " $3 " " $4
        if (!(key in ours) || $5 <= 0) next
        if ($4 == "images_per_s")
            printf "%s %s %s ratio %.2fx (aedet %.1f images/s, torch %.1f)\n", $1, $2, $3, ours[key] / $5, ours[key], $5
        else if ($4 == "peak_rss_mb")
            printf "%s %s %s ratio %.2fx (aedet %.0f MB, torch %.0f MB)\n", $1, $2, $3, ours[key] / $5, ours[key], $5
    }' "$ours" "$peer"
awk '$1 == "peak" { printf "gemm peak %s %s GFLOP/s (OpenBLAS sgemm 2048^3, same threads)\n", $3, $5 }
     $4 == "gemm_peak_fraction" { printf "%s %s %s at %.0f%% of the GEMM peak\n", $1, $2, $3, 100 * $5 }' "$ours"
