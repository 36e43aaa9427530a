#!/usr/bin/env bash
# Runs every test program given and prints one closing line:
# "N passed, N failed" counted over cmocka's test cases.
set -u
mkdir -p build
passed=0 failed=0 broken=()
for t in "$@"; do
    echo "== $t"
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        failed=$((failed + 1)); broken+=("$t (exit $rc)")
    fi
done
for b in "${broken[@]+"${broken[@]}"}"; do echo "crashed or failed outside a test case: $b"; done
echo "$passed passed, $failed failed" | tee build/test-summary.txt
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
