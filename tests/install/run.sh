#!/usr/bin/env bash
# `make test-install`: aedet as a user meets it after `make install`.
#   tests/install/run.sh PREFIX SONAME
# PREFIX holds what `make install-python PREFIX=...` put there. Every program
# runs under `env -i`: no LD_LIBRARY_PATH, PKG_CONFIG_PATH or AEDET_LIBRARY,
# so the rpath, the pkg-config file and the path the Python package recorded
# must do their work. Checks:
#   1. libaedet.so -> SONAME -> SONAME.MINOR.PATCH, and the SONAME inside;
#   2. the library exports exactly the functions the installed headers
#      declare (the rest of the library is hidden);
#   3. a C program built with the installed pkg-config file needs the
#      SONAME, finds the installed library, trains, scores and saves;
#   4. the installed tool runs and reads that program's model;
#   5. the installed Python package loads the installed library by the path
#      recorded at install time, and scores the C program's model.
set -euo pipefail
prefix=$1 soname=$2
here=$(cd "$(dirname "$0")" && pwd)
lib=$prefix/lib
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
check() { # check WHAT COMMAND...: runs COMMAND, prints ok or FAIL with WHAT
    local what=$1
    shift
    if "$@" >"$work/out" 2>&1; then
        echo "ok: $what"
    else
        echo "FAIL: $what"
        sed 's/^/    /' "$work/out"
        failed=1
    fi
}
clean() { env -i PATH=/usr/bin:/bin "$@"; }
empty="env -i PATH=/usr/bin:/bin" # the same inside sh -c

real=$(readlink -f "$lib/libaedet.so")
check "libaedet.so -> $soname -> $(basename "$real")" \
    test "$(readlink "$lib/libaedet.so")" = "$soname" -a "$(readlink "$lib/$soname")" = "$(basename "$real")" \
    -a "${real##*/$soname.}" != "$real" -a -f "$real"
check "the SONAME recorded in the library is $soname" \
    sh -c "readelf -d '$real' | grep -F '(SONAME)' | grep -qF '[$soname]'"

# Declared: every function the installed headers declare (first identifier
# ae_* before a '(' in each top-level statement, struct bodies removed).
cc -E -P -I"$prefix/include" "$prefix/include/aedet.h" | sed 's/__attribute__((visibility("default")))//g' |
    tr '\n' ' ' | sed -e ':a' -e 's/{[^{}]*}//' -e 'ta' | tr ';' '\n' | grep -v '^ *typedef' |
    sed -n 's/^[^(]*[^a-z0-9_]\(ae_[a-z0-9_]*\) *(.*/\1/p' | sort -u >"$work/declared"
nm -D --defined-only "$real" | awk '{print $NF}' | sort -u >"$work/exported"
check "$(wc -l <"$work/exported") exported symbols = the $(wc -l <"$work/declared") functions the headers declare" \
    diff "$work/declared" "$work/exported"

check "a C program builds with the installed pkg-config file" \
    clean sh -c "cc -std=c11 -Wall -Wextra -Werror '$here/app.c' -o '$work/app' \
                 \$(pkg-config --cflags --libs '$lib/pkgconfig/aedet.pc')"
check "the program needs $soname and finds it in $lib (rpath)" \
    sh -c "readelf -d '$work/app' | grep -F '(NEEDED)' | grep -qF '[$soname]' &&
           $empty ldd '$work/app' | grep -qF '$soname => $lib/$soname'"
check "the program trains, scores and saves a model with no environment" \
    clean "$work/app" "$work/app.aedet"
check "the installed tool runs with no environment" \
    sh -c "$empty '$prefix/bin/aedet' --version && $empty '$prefix/bin/aedet' info '$work/app.aedet'"

site=$(dirname "$(dirname "$(find "$prefix" -path '*/aedet/__init__.py' | head -1)")")
check "the installed Python package finds $lib/$soname by itself and scores the program's model" \
    clean /usr/bin/python3 -c "
import sys; sys.path.insert(0, '$site')
import aedet, numpy as np
assert aedet._lib.path == '$lib/$soname', aedet._lib.path
model = aedet.load('$work/app.aedet')
x = np.arange(4 * 64, dtype=np.uint8).reshape(4, 8, 8)
assert model.score(x).shape == (4,) and model.shape == (8, 8, 1)
"
[ "$failed" = 0 ] && echo "install tests passed" || { echo "install tests FAILED"; exit 1; }
