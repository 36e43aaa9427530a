# aedet build. `make` builds the library and the tool; `make test` builds the
# test suite with AddressSanitizer + UndefinedBehaviorSanitizer and runs it.
# Every src/<module>/*.c is part of the library except src/cli (the tool);
# every tests/test_*.c is one test program. Adding a file needs no edit here.

CC      ?= cc
ARCH    ?= -march=native
OPT     ?= -O3
PREFIX  ?= /usr/local
WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
CPPFLAGS = -Iinclude -Isrc -D_GNU_SOURCE
# -ffp-contract=off: no multiply-add is fused behind the code's back (clang
# fuses by default, gcc does not in C11 mode), so the portable loops give the
# bits of the vector kernels, which fuse only where they say so.
# -fno-math-errno: math functions need not set errno (nothing here reads it
# after them), so sqrtf and friends run in vectors; results are unchanged.
CFLAGS   = -std=c11 $(WARN) $(OPT) $(ARCH) -ffp-contract=off -fno-math-errno -fopenmp -g
LDLIBS   = -lopenblas -ljpeg -lpng -lz -lm -lpthread
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

LIB_SRC  = $(wildcard src/common/*.c src/nn/*.c src/data/*.c src/io/*.c src/eval/*.c src/score/*.c src/train/*.c)
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

REL_OBJ = $(LIB_SRC:%.c=$(REL)/%.o)
SAN_OBJ = $(LIB_SRC:%.c=$(SAN)/%.o)
TESTS   = $(TEST_SRC:tests/%.c=$(SAN)/tests/%)
BENCHES = $(BENCH_SRC:bench/%.c=$(REL)/bench/%)

# Debian packages: to build (compiler, BLAS, image codecs, zlib), to test
# (cmocka, clang's libFuzzer, Fashion-MNIST for the demo and the data tests).
DEB_BUILD = build-essential libopenblas-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev dataset-fashion-mnist
DEB_TEST  = libcmocka-dev clang libclang-rt-14-dev chromium
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps test test-build check bench bench-compare bench-data bench-quality fuzz install clean
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

$(REL)/libaedet.so: $(REL_OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) -shared -fopenmp -o $@ $^ $(LDLIBS)

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

$(REL)/bench/%: $(REL)/bench/%.o $(REL)/libaedet.a
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

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
	$(MAKE) CC=clang REL=build/clang build/clang/aedet
	$(MAKE) fuzz
	@cat build/test-summary.txt

test-build: $(TESTS) $(SAN)/aedet $(REL)/aedet

# The tests run the sanitized library; the end-to-end tests run both tools.
# TEST_ISAS: the AEDET_ISA values to run the suite under, one pass each
# (tests/run.sh; default: as the environment has it).
TEST_ISAS ?= default
test: test-build
	AEDET=$(SAN)/aedet AEDET_RELEASE=$(REL)/aedet AEDET_FUZZ_CORPUS=build/fuzz-corpus \
	    AEDET_TEST_ISAS="$(TEST_ISAS)" tests/run.sh $(TESTS)

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

# libFuzzer targets (clang only): FUZZ_SECONDS each, on a corpus the tests write.
FUZZ_SECONDS ?= 60
FUZZ_BIN = $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)
build/fuzz/%: fuzz/%.c $(LIB_SRC)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)clang $(CPPFLAGS) -std=c11 -g -O1 $(ARCH) -ffp-contract=off -fno-math-errno -fopenmp -fsanitize=fuzzer,address,undefined -o $@ $< $(LIB_SRC) $(LDLIBS)
fuzz: $(FUZZ_BIN)
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh $(FUZZ_BIN)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/aedet \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(REL)/aedet $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(REL)/libaedet.a $(REL)/libaedet.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/aedet.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/aedet/*.h $(DESTDIR)$(PREFIX)/include/aedet/
	sed 's|@PREFIX@|$(PREFIX)|; s|@VERSION@|$(shell sed -n 's/.*AE_VERSION_STRING "\(.*\)"/\1/p' include/aedet/common.h)|' \
	    docs/aedet.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/aedet.pc
	install -m 644 docs/aedet.1 $(DESTDIR)$(PREFIX)/share/man/man1/

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
