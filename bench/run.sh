#!/usr/bin/env bash
# `make bench`: aedet's throughput and memory for the tutorial's 256x256x3 model
# and a 32x32x1 one, batch 32. Environment: THREADS (default: all cores),
# SECONDS_PER_RUN (default 3, per measurement), BENCH_BIN (the benchmark program).
# Works from any folder; paths are relative to the repo root.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BENCH_BIN:-build/release/bench/bench_model}
if [ ! -x "$bin" ]; then
    echo "bench/run.sh: $bin is missing; build it with: make $bin" >&2
    exit 1
fi
threads=${THREADS:-$(nproc)}
seconds=${SECONDS_PER_RUN:-3}
. bench/cpu.sh
echo "# $(cpu_line), $(nproc) cores; $threads threads"
# BLAS is called from inside the library's own threads: keep it single-threaded.
OPENBLAS_NUM_THREADS=1 exec "$bin" --threads "$threads" --seconds "$seconds" "$@"
