#!/usr/bin/env bash
# Runs every test program given and prints one closing line:
# "N passed, N failed" counted over cmocka's test cases.
# AEDET_TEST_ISAS="default avx2 portable" runs them all once per word, with
# AEDET_ISA set to it (src/nn/kernels/isa.c caps the kernels there; "default" leaves
# AEDET_ISA as it is: the best kernels the CPU has, unless set), and the
# closing line counts every run.
set -u
mkdir -p build
passed=0 failed=0 broken=()
isas=${AEDET_TEST_ISAS:-default}
for isa in $isas; do
    start=$SECONDS isa_passed=$passed isa_failed=$failed
    for t in "$@"; do
        if [ "$isa" = default ]; then
            label=$t
            echo "== $t"
            out=$("$t" 2>&1); rc=$?
        else
            label="AEDET_ISA=$isa $t"
            echo "== $label"
            out=$(AEDET_ISA=$isa "$t" 2>&1); rc=$?
        fi
        printf '%s\n' "$out"
        p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
        f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
        passed=$((passed + p)); failed=$((failed + f))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            failed=$((failed + 1)); broken+=("$label (exit $rc)")
        fi
    done
    # One subtotal per kernel choice when there are several (not the last line).
    if [ "$isas" != default ]; then
        echo "-- kernels $isa: $((passed - isa_passed)) passed, $((failed - isa_failed)) failed in $((SECONDS - start))s"
    fi
done
for b in "${broken[@]+"${broken[@]}"}"; do echo "crashed or failed outside a test case: $b"; done
echo "$passed passed, $failed failed" | tee build/test-summary.txt
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
