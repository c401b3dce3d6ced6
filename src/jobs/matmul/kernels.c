/*
 * kernels.c - micro-kernels of the matmul job, written with GCC vector extensions.
 *
 * Design: the classic GotoBLAS/BLIS inner kernel. An mr x nr tile of C lives in registers
 * (mr rows x nv vectors); each k step loads nv vectors of the packed B row, broadcasts each of
 * the mr packed A values and does mr*nv multiply-adds. Loads are contiguous because the driver
 * (matmul.c) packed both operands; edges are handled there by zero padding and a scratch tile,
 * so the kernels have no branches on the tile shape.
 *
 * The same macro body is instantiated three times: AVX-512 (8x24, 24 zmm accumulators),
 * AVX2+FMA (6x8, 12 ymm accumulators: fits 16 registers with 2 B vectors and a broadcast) and a
 * portable 4x4 one of 2-double vectors (SSE2 / NEON / scalar). The x86 ones are compiled with
 * __attribute__((target)) and chosen at run time with __builtin_cpu_supports, so the library
 * itself needs no -m flags. This file is compiled with -ffp-contract=fast so `acc + a * b`
 * becomes one FMA where the target has it; the accumulators are named variables (not arrays)
 * because GCC at -O2 does not fully unroll the loops over an accumulator array.
 *
 * C is read at the end, not the start: the accumulators start at zero, the C tile is prefetched
 * before the k loop and added after it. Loaded first, C was a cache miss at the head of every
 * call with nothing to overlap it (the 12 accumulators all wait for it): at N = 2048 the C rows
 * of a task's MC x NC block (768 KiB) do not stay in L2 from one k block to the next. Zen 3 VM,
 * N = 2048, 2 threads, 6 alternating bench-matmul runs: best time median 0.212 -> 0.198 s
 * (1 thread, N = 1000 and 2048: no change beyond noise). Adding without the prefetch was slower
 * (N = 1000, 1 thread: 0.0437 -> 0.0464 s).
 *
 * Determinism: the k loop runs strictly in order and each accumulator lane holds exactly one
 * element of C, so the arithmetic per element does not depend on where its tile lies: a call
 * adds the chain of its kc multiply-adds, started from zero, to C. The driver's k blocks are
 * fixed (KC), so the element's whole sum does not depend on the thread count or block size.
 */
#include <string.h>

#include "kernels.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MM_X86 1
#else
#define MM_X86 0
#endif

__extension__ typedef double mm_v2 __attribute__((vector_size(16)));
#if MM_X86
__extension__ typedef double mm_v4 __attribute__((vector_size(32)));
__extension__ typedef double mm_v8 __attribute__((vector_size(64)));
#endif

/* Per-row and per-vector repetition lists. */
#define MM_ROWS4(X, V) X(0, V) X(1, V) X(2, V) X(3, V)
#define MM_ROWS6(X, V) MM_ROWS4(X, V) X(4, V) X(5, V)
#define MM_ROWS8(X, V) MM_ROWS6(X, V) X(6, V) X(7, V)
#define MM_VECS2(Y, i) Y(i, 0) Y(i, 1)
#define MM_VECS3(Y, i) Y(i, 0) Y(i, 1) Y(i, 2)

#define MM_DECL1(i, j) vec c##i##_##j;
#define MM_DECL(i, V) V(MM_DECL1, i)
#define MM_ZERO1(i, j) c##i##_##j = zero;
#define MM_ZERO(i, V) V(MM_ZERO1, i)
#define MM_STORE1(i, j) memcpy(c + (i) * ldc + (j) * vl, &c##i##_##j, sizeof(vec));
#define MM_STORE(i, V) V(MM_STORE1, i)
/* C += the tile's sum, at the end (see MM_KERNEL_BODY). */
#define MM_ADDC1(i, j)                                                                             \
    {                                                                                              \
        vec t_;                                                                                    \
        memcpy(&t_, c + (i) * ldc + (j) * vl, sizeof(vec));                                        \
        c##i##_##j = t_ + c##i##_##j;                                                              \
    }
#define MM_ADDC(i, V) V(MM_ADDC1, i)
/* Ask for the C tile (for writing) before the k loop; every vector, so that a row that starts
 * off a 64-byte boundary gets both of its lines. */
#define MM_PREFETCH1(i, j) __builtin_prefetch(c + (i) * ldc + (j) * vl, 1, 3);
#define MM_PREFETCH(i, V) V(MM_PREFETCH1, i)
/* One row of a k step: broadcast a[i] against each B vector. */
#define MM_ROWFMA1(i, j) c##i##_##j = c##i##_##j + b##j * a[i];
#define MM_ROWFMA(i, V) V(MM_ROWFMA1, i)
#define MM_BLOAD1(i, j) memcpy(&b##j, b + (j) * vl, sizeof(vec));
/* Prefetch, pf_ k steps ahead, the B line of each vector and the A line of the step. */
#define MM_BPF1(i, j) __builtin_prefetch(b + (pf_ * nv_ + (j)) * vl, 0, 3);

/*
 * The kernel body. vec: vector type, VL: its length in doubles, ROWS: row list (mr), VECS:
 * vector list (nv); nr = VL * nv. `b0..b(nv-1)` must be declared by the caller.
 */
#define MM_KERNEL_BODY(vec, VL, ROWS, VECS, PF)                                                    \
    {                                                                                              \
        const vec zero = {0};                                                                      \
        const size_t vl = VL, nv_ = MM_NV(VECS), pf_ = PF;                                         \
        size_t p;                                                                                  \
        ROWS(MM_DECL, VECS)                                                                        \
        if (load_c) {                                                                              \
            ROWS(MM_PREFETCH, VECS)                                                                \
        }                                                                                          \
        ROWS(MM_ZERO, VECS)                                                                        \
        for (p = 0; p < kc; p++) {                                                                 \
            if (pf_ > 0) {                                                                         \
                VECS(MM_BPF1, 0)                                                                   \
                __builtin_prefetch(a + pf_ * MM_MR(ROWS), 0, 3);                                   \
            }                                                                                      \
            VECS(MM_BLOAD1, 0)                                                                     \
            ROWS(MM_ROWFMA, VECS)                                                                  \
            a += MM_MR(ROWS);                                                                      \
            b += VL * MM_NV(VECS);                                                                 \
        }                                                                                          \
        if (load_c) {                                                                              \
            ROWS(MM_ADDC, VECS)                                                                    \
        }                                                                                          \
        ROWS(MM_STORE, VECS)                                                                       \
    }

#define MM_MR(ROWS) MM_MR_##ROWS
#define MM_MR_MM_ROWS4 4
#define MM_MR_MM_ROWS6 6
#define MM_MR_MM_ROWS8 8
#define MM_NV(VECS) MM_NV_##VECS
#define MM_NV_MM_VECS2 2
#define MM_NV_MM_VECS3 3

/* Portable: 4 x 4 of 2-double vectors (8 accumulators). */
static void
kernel_generic(size_t kc, const double *a, const double *b, double *c, size_t ldc, int load_c)
{
    typedef mm_v2 vec;
    vec b0, b1;

    MM_KERNEL_BODY(vec, 2, MM_ROWS4, MM_VECS2, 0)
}

#if MM_X86
/* AVX2 + FMA: 6 x 8 (12 ymm accumulators, 2 B vectors, 1 broadcast = 15 of 16 registers). */
__attribute__((target("avx2,fma"))) static void
kernel_avx2(size_t kc, const double *a, const double *b, double *c, size_t ldc, int load_c)
{
    typedef mm_v4 vec;
    vec b0, b1;

    MM_KERNEL_BODY(vec, 4, MM_ROWS6, MM_VECS2, 0)
}

/*
 * The AVX-512 kernel prefetches its B and A lines MM_PF_AVX512 k steps ahead (0: not). On a
 * 2-vCPU Intel Xeon VM (2 MiB L2, where each call streams its 96 KiB B micro-panel from L2),
 * bench-matmul, ratio to OpenBLAS in the same run, 2 runs each, 1 / 2 threads: N = 2048
 * 0.903-0.922 / 0.890-0.928 -> 0.970-0.989 / 0.977-0.984 (16 ahead; 32 and 64 about the same);
 * N = 1000 0.97-1.03 / 0.96-0.99 -> 1.06 / 1.04-1.07. The AVX2 and portable kernels do not:
 * on the Zen 3 VM a prefetch in the AVX2 kernel measured no better.
 */
#ifndef MM_PF_AVX512
#define MM_PF_AVX512 16
#endif
/* AVX-512F: 8 x 24 (24 zmm accumulators, 3 B vectors, broadcasts folded into the FMAs). */
__attribute__((target("avx512f,fma"))) static void
kernel_avx512(size_t kc, const double *a, const double *b, double *c, size_t ldc, int load_c)
{
    typedef mm_v8 vec;
    vec b0, b1, b2;

    MM_KERNEL_BODY(vec, 8, MM_ROWS8, MM_VECS3, MM_PF_AVX512)
}
#endif

static const struct jobq__mm_kernel kernels[] = {
    {JOBQ_MATMUL_KERNEL_GENERIC, 4, 4, kernel_generic},
#if MM_X86
    {JOBQ_MATMUL_KERNEL_AVX2, 6, 8, kernel_avx2},
    {JOBQ_MATMUL_KERNEL_AVX512, 8, 24, kernel_avx512},
#endif
};

static int
cpu_has(jobq_matmul_kernel id)
{
    switch (id) {
    case JOBQ_MATMUL_KERNEL_GENERIC:
        return 1;
#if MM_X86
    case JOBQ_MATMUL_KERNEL_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case JOBQ_MATMUL_KERNEL_AVX512:
        __builtin_cpu_init();
        /* Built with target("avx512f,fma"): check both, though every AVX-512F CPU has FMA. */
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
    default:
        return 0;
    }
}

const struct jobq__mm_kernel *
jobq__mm_kernel_get(jobq_matmul_kernel id)
{
    size_t i;

    if (id == JOBQ_MATMUL_KERNEL_AUTO) {
        /* Best first. */
        for (i = sizeof(kernels) / sizeof(kernels[0]); i-- > 0;)
            if (cpu_has(kernels[i].id))
                return &kernels[i];
        return &kernels[0];
    }
    for (i = 0; i < sizeof(kernels) / sizeof(kernels[0]); i++)
        if (kernels[i].id == id)
            return cpu_has(id) ? &kernels[i] : NULL;
    return NULL;
}
