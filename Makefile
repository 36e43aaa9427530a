# aedet build. `make` builds the library and the tool; `make test` builds the
# test suite with AddressSanitizer + UndefinedBehaviorSanitizer and runs it.
# Every src/<module>/*.c is part of the library except src/cli (the tool);
# every tests/test_*.c is one test program. Adding a file needs no edit here.

CC      ?= cc
# A baseline every x86-64 CPU since about 2009 runs (SSE4.2, POPCNT), so an
# installed binary runs anywhere: the hot kernels are compiled for AVX2,
# AVX-512 and AMX by target attributes and picked at run time (src/nn/kernels/isa.c),
# whatever ARCH says. `make ARCH=-march=native` tunes the rest for this CPU
# only; `make ARCH=` takes the compiler's default.
ARCH    ?= -march=x86-64-v2
OPT     ?= -O3
PREFIX  ?= /usr/local
WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
# libhdf5 (Keras weights, src/io/keras_h5*.c): Debian's serial build.
CPPFLAGS = -Iinclude -Isrc -D_GNU_SOURCE -isystem /usr/include/hdf5/serial
# -ffp-contract=off: no multiply-add is fused behind the code's back (clang
# fuses by default, gcc does not in C11 mode), so the portable loops give the
# bits of the vector kernels, which fuse only where they say so.
# -fno-math-errno: math functions need not set errno (nothing here reads it
# after them), so sqrtf and friends run in vectors; results are unchanged.
# -fvisibility=hidden: libaedet.so exports only what the headers mark AE_API.
CFLAGS   = -std=c11 $(WARN) $(OPT) $(ARCH) -ffp-contract=off -fno-math-errno -fopenmp -fvisibility=hidden -g
# No BLAS: every matrix product is the library's own (ae_gemm and the direct
# kernels), so that scores do not depend on which kernel a BLAS picks per CPU.
LDLIBS   = -ljpeg -lpng -lz -lm -lpthread -lhdf5_serial
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

LIB_SRC  = $(wildcard src/common/*.c src/nn/*.c src/nn/kernels/*.c src/data/*.c src/io/*.c src/eval/*.c src/score/*.c src/train/*.c src/api/*.c)
CLI_SRC  = $(wildcard src/cli/*.c)
TEST_SRC = $(wildcard tests/test_*.c)
BENCH_SRC = $(wildcard bench/bench_*.c)
FUZZ_SRC = $(wildcard fuzz/fuzz_*.c)

# `make V=1` shows every command; by default one short line per file.
ifeq ($(V),1)
Q =
else
Q = @
endif

REL = build/release
SAN = build/asan

# MPI=1: the tool runs under mpirun (train and score spread over the ranks:
# src/cli/dist_mpi.c, docs/SCALING.md), with Open MPI's flags from
# pkg-config, built into build/mpi; the library does not change.
ifeq ($(MPI),1)
MPI_LIBS := $(shell pkg-config --libs ompi 2>/dev/null)
ifeq ($(MPI_LIBS),)
$(error MPI=1 needs Open MPI, and pkg-config finds no 'ompi': apt-get install libopenmpi-dev openmpi-bin (or make deps))
endif
CPPFLAGS += -DAEDET_MPI $(shell pkg-config --cflags ompi)
LDLIBS   += $(MPI_LIBS)
REL = build/mpi
endif
# The MPI build for tests/test_mpi.c, made when Open MPI is installed (the
# test says it skips otherwise).
MPI_REL  ?= build/mpi
HAVE_MPI := $(shell pkg-config --exists ompi 2>/dev/null && command -v mpirun >/dev/null && echo 1)
MPI_TOOL  = $(if $(HAVE_MPI),$(MPI_REL)/aedet)

# The shared library's versions: libaedet.so.MAJOR (the SONAME programs
# record) -> libaedet.so.MAJOR.MINOR.PATCH, and libaedet.so for linking.
VERSION := $(shell sed -n 's/.*AE_VERSION_STRING "\(.*\)"/\1/p' include/aedet/common.h)
SONAME   = libaedet.so.$(firstword $(subst ., ,$(VERSION)))
LIBDIR   = $(PREFIX)/lib

REL_OBJ = $(LIB_SRC:%.c=$(REL)/%.o)
SAN_OBJ = $(LIB_SRC:%.c=$(SAN)/%.o)
TESTS   = $(TEST_SRC:tests/%.c=$(SAN)/tests/%)
BENCHES = $(BENCH_SRC:bench/%.c=$(REL)/bench/%)

# Debian packages: to build (compiler, image codecs, zlib, libhdf5; OpenBLAS for the benchmarks' GEMM peak), to test
# (cmocka, clang's libFuzzer, Fashion-MNIST for the demo and the data tests;
# pkgconf, and Python with numpy, pip, setuptools and wheel for the install
# and Python package tests).
DEB_BUILD = build-essential libopenblas-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev dataset-fashion-mnist libhdf5-dev
DEB_TEST  = libcmocka-dev clang libclang-rt-14-dev chromium pkgconf python3-numpy python3-pip \
            python3-setuptools python3-wheel libopenmpi-dev openmpi-bin
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps test test-build check bench bench-compare bench-data bench-score-files bench-quality fuzz install clean \
        install-python test-install test-python
all: $(REL)/libaedet.a $(REL)/libaedet.so $(REL)/aedet

$(REL)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -MMD -MP -c $< -o $@

$(SAN)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC san  $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -O1 $(SANFLAGS) -MMD -MP -c $< -o $@

$(REL)/libaedet.a: $(REL_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(REL)/libaedet.so.$(VERSION): $(REL_OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) -shared -fopenmp -Wl,-soname,$(SONAME) -Wl,--no-undefined -o $@ $^ $(LDLIBS)

$(REL)/libaedet.so: $(REL)/libaedet.so.$(VERSION)
	$(Q)ln -sf libaedet.so.$(VERSION) $(REL)/$(SONAME)
	$(Q)ln -sf $(SONAME) $@

$(SAN)/libaedet.a: $(SAN_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(REL)/aedet: $(CLI_SRC:%.c=$(REL)/%.o) $(REL)/libaedet.a
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(SAN)/aedet: $(CLI_SRC:%.c=$(SAN)/%.o) $(SAN)/libaedet.a
	@echo "  LD san  $@"
	$(Q)$(CC) $(CFLAGS) -O1 $(SANFLAGS) -o $@ $^ $(LDLIBS)

$(SAN)/tests/%: $(SAN)/tests/%.o $(SAN)/tests/support.o $(SAN)/libaedet.a
	@echo "  LD san  $@"
	$(Q)$(CC) $(CFLAGS) -O1 $(SANFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

# tests/test_oom.c fails the library's allocations one at a time: ld's
# --wrap sends every call of these in the program (libaedet.a included) to
# the test's own __wrap_ functions.
OOM_WRAP = malloc calloc realloc posix_memalign strdup strndup
$(SAN)/tests/test_oom: private LDLIBS += $(foreach f,$(OOM_WRAP),-Wl,--wrap=$(f))

# OpenBLAS only for bench_model's reference: the machine's sgemm peak.
$(REL)/bench/%: $(REL)/bench/%.o $(REL)/libaedet.a
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lopenblas

# Installs what the build and the tests need (as root, or through sudo).
# Both steps wait up to 10 minutes for apt's locks (a boot-time unattended
# upgrade holds them) rather than fail at once: install through
# DPkg::Lock::Timeout; update too, but apt 2.6 ignores it for the lists lock,
# so update is also retried every 5 s while that lock is its error. env
# passes DEBIAN_FRONTEND through sudo, which drops the caller's environment.
APT = $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600
deps:
	@echo "$(strip $(APT)) update -qq"
	@for i in $$(seq 120); do \
	    out=$$($(APT) update -qq 2>&1); rc=$$?; \
	    case "$$rc $$out" in "0 "*) ;; *"Could not get lock"*) [ $$i = 120 ] || { sleep 5; continue; };; esac; \
	    [ -z "$$out" ] || printf '%s\n' "$$out"; exit $$rc; \
	done
	$(APT) install -y -qq --no-install-recommends $(DEB_BUILD) $(DEB_TEST)

# Everything CI runs: the sanitized test suite on the best kernels the CPU
# has, then all of it again with AEDET_ISA capping them at AVX2 and at the
# portable loops (what CPUs without AVX-512, or without AVX2, run; each pass
# takes under a minute, so every program reruns, not just those that run the
# model); then a clang build and each fuzzer for a while. The last line counts
# the test cases of every pass.
CHECK_ISAS = default avx2 portable
check:
	$(MAKE) test TEST_ISAS="$(CHECK_ISAS)"
	$(MAKE) test-install test-python
	$(MAKE) CC=clang REL=build/clang build/clang/aedet
	$(MAKE) fuzz
	@cat build/test-summary.txt

test-build: $(TESTS) $(SAN)/aedet $(REL)/aedet mpi-tool

.PHONY: mpi-tool
mpi-tool:
	$(if $(HAVE_MPI),+$(MAKE) --no-print-directory MPI=1 REL=$(MPI_REL) $(MPI_REL)/aedet,@echo "no Open MPI (pkg-config ompi, mpirun): test_mpi will skip")

# The tests run the sanitized library; the end-to-end tests run both tools.
# TEST_ISAS: the AEDET_ISA values to run the suite under, one pass each
# (tests/run.sh; default: as the environment has it).
TEST_ISAS ?= default
test: test-build
	AEDET=$(SAN)/aedet AEDET_RELEASE=$(REL)/aedet AEDET_MPI=$(MPI_TOOL) AEDET_FUZZ_CORPUS=build/fuzz-corpus \
	    AEDET_TEST_ISAS="$(TEST_ISAS)" tests/run.sh $(TESTS)

# `make install` into a scratch PREFIX (and the Python package with it),
# then a C program built with the installed pkg-config file and run with an
# empty environment, the installed tool, the Python package found without
# AEDET_LIBRARY, and the SONAME and exported symbols (tests/install/run.sh).
INSTALL_TEST_PREFIX = $(abspath $(REL)/install-test)
test-install: all
	rm -rf $(INSTALL_TEST_PREFIX)
	$(MAKE) --no-print-directory install-python PREFIX=$(INSTALL_TEST_PREFIX) DESTDIR= >/dev/null
	tests/install/run.sh $(INSTALL_TEST_PREFIX) $(SONAME)

# The Python package (python/) from the source tree over this build's
# libaedet.so, checked against this build's tool on the same data.
test-python: $(REL)/libaedet.so $(REL)/aedet
	PYTHONPATH=python AEDET_LIBRARY=$(REL)/libaedet.so AEDET=$(REL)/aedet PYTHONDONTWRITEBYTECODE=1 \
	    $(PYTHON) -m unittest discover -s tests/python -t tests/python

bench: $(BENCHES) $(REL)/aedet
	bench/run.sh

bench-compare: $(BENCHES)
	bench/compare.sh

# Detection quality (docs/QUALITY.md): one-class Fashion-MNIST, the tutorial's
# recipe and synthetic surface defects, per score rule; what each rule costs.
bench-quality: $(REL)/aedet $(REL)/bench/bench_textures $(REL)/bench/bench_scores
	bench/quality.sh
	$(REL)/bench/bench_scores

# Decoding throughput (256x256 JPEGs) and peak memory, in memory and streamed.
bench-data: $(REL)/bench/bench_decode $(REL)/bench/bench_data
	$(REL)/bench/bench_decode
	$(REL)/bench/bench_data

# Scoring 10,000 JPEG files end to end against the model's own scoring rate.
bench-score-files: $(REL)/aedet $(REL)/bench/bench_data $(REL)/bench/bench_model
	bench/score_files.sh

# libFuzzer targets (clang only): FUZZ_SECONDS each, on a corpus the tests write.
# The library is compiled once for all of them (instrumented for coverage,
# not linked with libFuzzer's main). Built once per fuzzer, and with UBSan in
# the big SIMD kernel files, clang took 20 minutes of a 2-core CI machine's
# 30; those files keep AddressSanitizer here (fuzz_model runs them on the
# shapes it loads), and UBSan checks them in the test suite on every path.
FUZZ_SECONDS ?= 60
FUZZ_BIN = $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)
FUZZ_OBJ = $(LIB_SRC:%.c=build/fuzz/obj/%.o)
FUZZ_CFLAGS = -std=c11 -g -O1 $(ARCH) -ffp-contract=off -fno-math-errno -fopenmp
FUZZ_SAN = fuzzer-no-link,address,undefined
.SECONDARY: $(FUZZ_OBJ)
FUZZ_KERNEL_OBJ = $(patsubst %,build/fuzz/obj/src/nn/kernels/direct_%.o,avx2 avx512 bf16)
$(FUZZ_KERNEL_OBJ): FUZZ_SAN = fuzzer-no-link,address
# (without UBSan, clang at -O1 declines some unroll pragmas there and says so)
$(FUZZ_KERNEL_OBJ): FUZZ_CFLAGS += -Wno-pass-failed
build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC fuzz $<"
	$(Q)clang $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=$(FUZZ_SAN) -MMD -MP -c $< -o $@
build/fuzz/%: fuzz/%.c $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)clang $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_OBJ) $(LDLIBS)
fuzz: $(FUZZ_BIN)
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh $(FUZZ_BIN)

# The tool links libaedet statically, so it runs from anywhere. Programs
# built with the installed pkg-config file get an rpath to LIBDIR (none for
# /usr/lib and /lib, which the loader always searches), so they find
# libaedet.so.MAJOR whatever PREFIX is, without root or LD_LIBRARY_PATH.
# A real install (no DESTDIR) as root into a folder the loader's cache
# covers (/usr/local/lib on Debian) also runs ldconfig, so that programs
# linked without pkg-config and dlopen (the Python package's last resort)
# find the new SONAME.
PC_RPATH = $(if $(filter /usr/lib /lib,$(LIBDIR)),,-Wl,-rpath,$${libdir})
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PREFIX)/include/aedet \
	    $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(REL)/aedet $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(REL)/libaedet.a $(REL)/libaedet.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libaedet.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libaedet.so
	install -m 644 include/aedet.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/aedet/*.h $(DESTDIR)$(PREFIX)/include/aedet/
	sed 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@VERSION@|$(VERSION)|; s|@RPATH@|$(PC_RPATH)|' \
	    docs/aedet.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/aedet.pc
	install -m 644 docs/aedet.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && \
	    ldconfig -v -N 2>/dev/null | grep -q '^$(LIBDIR):'; then echo ldconfig; ldconfig; fi

# The Python package (python/) for /usr/bin/python3, told where the library
# was installed, into PYTHON_SITE: PREFIX/lib/python3.X/dist-packages, which
# Debian's python3 searches for PREFIX=/usr/local (pip's own --prefix would
# put it under PREFIX/local/ there). Built from a copy, so that setuptools'
# build folders stay out of the source tree.
PYTHON ?= /usr/bin/python3
PYTHON_SITE ?= $(PREFIX)/lib/python$(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')/dist-packages
install-python: install
	rm -rf $(REL)/python-build && cp -r python $(REL)/python-build
	AEDET_INSTALLED_LIBRARY=$(LIBDIR)/$(SONAME) $(PYTHON) -m pip install --quiet --root-user-action=ignore \
	    --no-build-isolation --no-index --no-deps --upgrade --target=$(DESTDIR)$(PYTHON_SITE) $(REL)/python-build

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
