#!/usr/bin/env bash
# Runs each libFuzzer binary given for $FUZZ_SECONDS (default 60) on its corpus
# build/fuzz-corpus/<binary name>/ (the tests write seeds there when run with
# AEDET_FUZZ_CORPUS=build/fuzz-corpus). Fails if any fuzzer finds a crash, a
# leak or a timeout; the reproducer is left in build/fuzz-artifacts/<name>/.
set -u
seconds=${FUZZ_SECONDS:-60}
corpus_root=${FUZZ_CORPUS_ROOT:-build/fuzz-corpus}
[ "$#" -gt 0 ] || { echo "usage: $0 build/fuzz/fuzz_NAME..." >&2; exit 2; }
failed=()
for bin in "$@"; do
    name=$(basename "$bin")
    corpus="$corpus_root/$name"
    artifacts="build/fuzz-artifacts/$name"
    mkdir -p "$corpus" "$artifacts"
    if [ -z "$(ls -A "$corpus")" ]; then
        echo "note: $corpus is empty; run the tests with AEDET_FUZZ_CORPUS=$corpus_root for seeds" >&2
    fi
    echo "== $name: ${seconds}s on $corpus"
    if "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 "$corpus" \
        >"$artifacts/log.txt" 2>&1; then
        grep -E '^stat::number_of_executed_units|^Done' "$artifacts/log.txt" | tail -2
    else
        echo "FAILED: $name (see $artifacts/log.txt)"
        grep -E 'ERROR|SUMMARY|Test unit written' "$artifacts/log.txt" | head -10
        failed+=("$name")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzzers that found problems: ${failed[*]}"
    exit 1
fi
echo "all fuzzers ran clean"
