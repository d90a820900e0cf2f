#pragma once
// CPT_VECTOR_CLONES before a function compiles it three times, for
// AVX-512 (x86-64-v4), AVX2 (x86-64-v3) and the baseline, and the loader
// picks the one this CPU runs (GCC's target_clones). Elsewhere (clang, as
// the fuzz build uses, or another architecture) it is the portable loop.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CPT_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CPT_VECTOR_CLONES
#endif
