# Sourced by the benchmark scripts: cpu_line prints the CPU model as lscpu
# names it, its family and model numbers (a KVM guest's "AMD EPYC" or
# "Intel Xeon Processor" says little more), the vector extensions the
# kernels choose between (avx2, avx512f, avx512_bf16, amx_bf16) and the
# kernels AEDET_ISA asks for, so that a table says which CPU and path made it.
cpu_line() {
    local flags=() f
    for f in avx2 avx512f avx512_bf16 amx_bf16; do
        grep -qw "$f" /proc/cpuinfo 2>/dev/null && flags+=("$f")
    done
    lscpu | awk -F': *' -v flags="${flags[*]:-none}" -v isa="${AEDET_ISA:-default}" '
        /^Model name:/ { name = $2 } /^CPU family:/ { family = $2 } /^Model:/ { model = $2 }
        END { printf "%s (family %s, model %s; %s; AEDET_ISA=%s)", name, family, model, flags, isa }'
}
