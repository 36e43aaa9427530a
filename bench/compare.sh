#!/usr/bin/env bash
# `make bench-compare`: aedet and PyTorch (bench/torch_peer.py) on the same
# model, batch and thread count, one process per size and side, then ratios:
#   train 256x256x3 b32 ratio 1.23x   images/s, aedet over torch (>1: aedet faster)
#   mem 256x256x3 b32 ratio 0.40x     peak RSS, aedet over torch (<1: aedet smaller)
# and the machine's float32 GEMM peak at the same thread count (OpenBLAS sgemm,
# 2048^3, the best of a few calls, measured by each aedet process) with each
# aedet mode's GFLOP/s as a fraction of it (the median step's, and the fastest
# step's, which compares best with best), and the streaming bandwidth (read,
# write) the passes over activations are bound by. aedet's output
# (tee'd above the ratios) has the per-layer time breakdown as # lines.
# Environment: THREADS (default: all cores), SECONDS_PER_RUN (default 3),
# SIZES (default "32x32x1 256x256x3"), BATCH (32), PYTHON (/usr/bin/python3),
# BENCH_BIN, BF16 (0; 1: aedet in its opt-in bfloat16 mode, which needs AMX
# tiles or AVX512-BF16; PyTorch stays float32), AEDET_ISA (the kernels:
# portable, avx2, avx512; default the best), REPEATS (1; with more, both sides run that many times in turn
# and each ratio is the median, the lower middle one for an even count, with
# every repeat's in brackets), PEER_ISA (same: with AEDET_ISA=avx2,
# PyTorch is held to AVX2 too, as on a CPU without AVX-512 it would be:
# ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA and OPENBLAS_CORETYPE; best:
# PyTorch keeps all of this CPU's, as it always does for the other paths). PyTorch runs
# with jemalloc preloaded (decay off, transparent huge pages, as aedet asks
# for its own big buffers) when installed.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BENCH_BIN:-build/release/bench/bench_model}
python=${PYTHON:-/usr/bin/python3}
threads=${THREADS:-$(nproc)}
seconds=${SECONDS_PER_RUN:-3}
batch=${BATCH:-32}
repeats=${REPEATS:-1}
bf16=${BF16:-0}
sizes=${SIZES:-"32x32x1 256x256x3"}
if [ ! -x "$bin" ]; then
    echo "bench/compare.sh: $bin is missing; build it with: make $bin" >&2
    exit 1
fi
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
peer_env=(OPENBLAS_NUM_THREADS=1)
peer_isa="its best"
if [ "${PEER_ISA:-same}" = same ] && [ "${AEDET_ISA:-}" = avx2 ]; then
    peer_env+=(ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell)
    peer_isa="held to AVX2 (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell)"
fi
if [ -e "$jemalloc" ]; then
    peer_env+=(LD_PRELOAD="$jemalloc" MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1,thp:always)
    allocator="jemalloc (decay off, thp:always)"
else
    allocator="glibc malloc (libjemalloc2 not installed: apt-get install libjemalloc2)"
fi
. bench/cpu.sh
echo "# $(cpu_line), $(nproc) cores; $threads threads, batch $batch"
echo "# torch allocator: $allocator; torch instructions: $peer_isa"

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# Each repeat runs both sides once per size, aedet first; on a shared machine
# the median of several repeats' ratios is steadier than one.
for ((r = 1; r <= repeats; r++)); do
    for size in $sizes; do
        OPENBLAS_NUM_THREADS=1 "$bin" --threads "$threads" --seconds "$seconds" --batch "$batch" \
            --size "$size" --bf16 "$bf16" | tee -a "$dir/ours.$r"
        env "${peer_env[@]}" "$python" bench/torch_peer.py --threads "$threads" \
            --seconds "$seconds" --batch "$batch" --size "$size" | sed 's/^#/# torch:/' |
            tee -a "$dir/peer.$r"
    done
    awk -v r="$r" '
        FNR == NR { if ($1 !~ /^#/ && NF == 5) ours[$1 " " $2 " " $3 " " $4] = $5; next }
        $1 !~ /^#/ && NF == 5 && ($4 == "images_per_s" || $4 == "peak_rss_mb") {
            key = $1 " " $2 " " $3 " " $4
            if ((key in ours) && $5 > 0) print key, r, ours[key] / $5, ours[key], $5
        }' "$dir/ours.$r" "$dir/peer.$r" >> "$dir/ratios"
done

echo "# ratios: images/s aedet/torch (>1: aedet faster); peak RSS aedet/torch (<1: aedet smaller)"
[ "$repeats" -gt 1 ] && echo "# the median of $repeats repeats, each repeat's ratio in brackets"
awk -v n="$repeats" '
    {
        key = $1 " " $2 " " $3 " " $4
        if (!(key in count)) order[++keys] = key
        c = ++count[key]
        ratio[key, c] = $6; a[key, c] = $7; b[key, c] = $8
    }
    END {
        for (k = 1; k <= keys; k++) {
            key = order[k]; c = count[key]
            for (i = 1; i <= c; i++) rank[i] = i
            for (i = 2; i <= c; i++) # the repeats by ratio: insertion sort
                for (j = i; j > 1 && ratio[key, rank[j - 1]] > ratio[key, rank[j]]; j--) {
                    t = rank[j]; rank[j] = rank[j - 1]; rank[j - 1] = t
                }
            m = rank[int((c + 1) / 2)]
            split(key, f, " ")
            printf "%s %s %s ratio %.2fx", f[1], f[2], f[3], ratio[key, m]
            if (f[4] == "images_per_s")
                printf " (aedet %.1f images/s, torch %.1f)", a[key, m], b[key, m]
            else
                printf " (aedet %.0f MB, torch %.0f MB)", a[key, m], b[key, m]
            if (n > 1) {
                printf " ["
                for (i = 1; i <= c; i++) printf "%s%.2f", (i > 1 ? " " : ""), ratio[key, i]
                printf "]"
            }
            printf "\n"
        }
    }' "$dir/ratios"
cat "$dir"/ours.* > "$dir/ours"
ours="$dir/ours"
awk '$1 == "peak" && $2 == "sgemm2048" { printf "gemm peak %s %s GFLOP/s (OpenBLAS sgemm 2048^3, same threads)\n", $3, $5 }
     $1 == "peak" && $2 == "stream" { printf "stream %s %s %s GB/s (one pass over 512 MB, same threads)\n", $3, substr($4, 1, index($4, "_") - 1), $5 }
     $4 == "gemm_peak_fraction" { printf "%s %s %s at %.0f%% of the GEMM peak (median step)\n", $1, $2, $3, 100 * $5 }
     $4 == "gemm_peak_fraction_best" { printf "%s %s %s at %.0f%% of the GEMM peak (fastest step)\n", $1, $2, $3, 100 * $5 }' "$ours"
