/*
 * matmul.c - C = A x B on a jobq pool: B packed once, row blocks of C as pool tasks.
 *
 * Design (GotoBLAS/BLIS structure, one level of it handed to the pool):
 *   - B is copied once per call into "panels" of nr columns (nr = the kernel's register tile
 *     width), zero-padded on the right, and cut along k into blocks of KC rows; within a block
 *     each panel is a contiguous kc x nr micro-panel. The copy is split over the pool by panels.
 *   - The rows of C are cut into blocks (block_rows, a multiple of the kernel's mr unless given
 *     otherwise); each block is one task. A task walks its rows MC at a time; for every k block
 *     it copies that MC x KC slice of A into mr-row micro-panels (zero-padded at the bottom) in a
 *     per-thread buffer, then runs the micro-kernel over every (mr-row, nr-panel) tile.
 *     Tiles that stick out of C go through a scratch tile, so the kernel never sees an edge.
 *   - Tasks reach the pool through jobq_pool_parallel_for (caller computes too) or a jobq_group.
 *   - Under parallel_for with more than one slice of B (slice = one column block x one k block,
 *     KC x NC doubles) and more than one row block, a task is one (slice, row block) pair and
 *     tasks go out slice by slice: all threads sweep the same slice at the same time, so it is
 *     read from the last-level cache once per row block instead of every thread cycling its
 *     own way through all of B (32 MiB at N = 2048: the whole L3 of the development VM). A task
 *     waits for its row block's previous slice (see run_slice_task). Zen 3 VM, 2 threads,
 *     N = 2048, ratio to OpenBLAS, 9 alternating bench-matmul runs: median 0.939 -> 1.009.
 *   - Under parallel_for with a small B (one slice, all copies within MM_PRIVATE_B_MAX
 *     doubles), every computing thread packs all of B into its own buffer when it takes its
 *     first row block, instead of the threads packing it together: shared, each thread then
 *     read the half the other had packed out of the other core's cache, and a 2-thread N = 128
 *     trace showed the 18-row blocks taking 18-20 us where one thread alone takes ~13.
 *     Duplicated packing costs less than that here. Zen 3 VM, N = 128, 2 threads, 13
 *     alternating runs: best time median ~62 -> ~60 us (within this VM's noise; OpenBLAS:
 *     58-66 us). The limit was N = 128 until a trace of the best of 100 2-thread N = 512
 *     calls showed the shared packing taking 230-624 us of thread time against 164 us on one
 *     thread. With the limit at N = 512 (five batches of alternating bench-matmul processes,
 *     2-thread best time, pooled medians): N = 256 0.442 -> 0.428 ms (24 runs each), 384
 *     1.442 -> 1.399 (16), 512 3.424 -> 3.418 (34; two batches said -9 %, one +3 %). Not with
 *     more than one slice: at N = 1000 and 1024 (two k blocks, 8 MiB per copy) private copies
 *     gave 2-thread speed-ups of 1.39-2.15 against 1.67-2.12 shared.
 *
 * Invariants: each element of C belongs to exactly one task; its value is the sum, in k-block
 * order, of one chain of multiply-adds per k block of KC (a constant), each in increasing k
 * order, so C does not depend on the thread count, the block size or the scheduling.
 * Nothing is shared between tasks except read-only packed B; each thread has its own A buffer.
 */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels.h"
#include "matmul-internal.h"

/* Cache blocking. KC x nr of B (a micro-panel) and mr x KC of A stay close to the core while
 * a tile is computed; MC x KC of A (the per-thread buffer) stays in L1/L2. MC is rounded up to
 * the kernel's mr. Values picked with bench/matmul and a sweep of MC in {16, 32, 48, 96, 192},
 * KC in {256, 512} and 4 or 16 tasks per thread on the development machine (Zen 4, 2 cores),
 * with a workspace so that page faults stayed out of the timings: MC = 16 was fastest on both
 * 1 and 2 threads up to N = 1024 (2 threads, N = 1024: 12.8 ms vs 15.4 ms for MC = 96, KC =
 * 256, 4 tasks), MC = 96 from N = 2048 on (112 ms vs 128 ms for MC = 16), where each pass over
 * the B slice is a trip to L3 that more rows of A must pay for. */
#ifndef MM_KC
#define MM_KC 512
#endif
#ifndef MM_MC_SMALL
#define MM_MC_SMALL 16
#endif
#ifndef MM_MC_LARGE
#define MM_MC_LARGE 96
#endif
/*
 * MC for a B of at most MM_MC_LARGE_B elements where the core's L2 holds at least MM_BIG_L2
 * bytes, capped so that the rows still give every computing thread MM_MC_TASKS slices of MC.
 * The MC = 16 above was measured on Zen 4 (1 MiB L2) and Zen 3 (512 KiB); on a 2-vCPU Intel
 * Xeon VM (AVX-512, 2 MiB L2 per core, 480 MiB L3) it left each packed B micro-panel used by
 * two register tiles only, and the AVX-512 kernel at 0.72-0.87 of OpenBLAS at N = 512-1024.
 * bench-matmul, ratio to OpenBLAS in the same run, 3 runs each, 1 / 2 threads: N = 1024
 * 0.775-0.831 / 0.758-0.801 (MC 16) -> 0.969-0.995 / 0.952-0.984 (MC 96, cap 4); N = 512
 * 0.81-0.87 / 0.89-0.95 -> 1.008-1.017 / 1.053-1.062; N = 256, 2 threads: MC 96 without the
 * cap made 3 row blocks for 3 computing threads (0.94-0.97), with it 1.24-1.28. Caps of 2 and
 * 8 measured no better; KC 128-1024 and NC 2040 no better at N = 1024-2048 on that VM.
 */
#ifndef MM_MC_BIG_L2
#define MM_MC_BIG_L2 96
#endif
#ifndef MM_BIG_L2
#define MM_BIG_L2 ((size_t)2 << 20)
#endif
#ifndef MM_MC_TASKS
#define MM_MC_TASKS 4
#endif
/* MM_MC_LARGE when B has more elements than this (N = 1448 for square matrices). */
#define MM_MC_LARGE_B ((size_t)1 << 21)
/* Columns of B per outer column block (NC): bounds the slice of packed B a task sweeps per
 * (k block, MC rows), KC x NC doubles = 4 MiB, so that it stays in the last-level cache. Every
 * column block re-packs the task's rows of A and re-reads its C tiles, so NC is as wide as that
 * allows. It was 64 panels (512 columns for the AVX2 kernel, 1536 for AVX-512). On a Zen 3 VM
 * (AVX2 kernel), medians of 4 alternating bench-matmul runs, ratio to OpenBLAS, 2026-12-01:
 * N = 1000, 1 thread: 0.917 (512 columns), 0.958 (2048), 0.947 (1024); N = 2048, 1 thread:
 * 0.971, 0.958, 1.000; the best times were 1024's or within 3 % of the best. Whole panels. */
#ifndef MM_NC_COLS
#define MM_NC_COLS 1024
#endif
/* Private B (see the header) while B is one slice and all copies together hold at most this
 * many doubles (8 MiB, a quarter of the development VM's L3: with the AVX2 kernel, N = 512 on
 * pools of up to 3 workers, N = 256 on up to 15; AVX-512 pads N = 512 to 528 columns, so 2
 * workers). The copies are packed one per thread, not split: with more threads, a smaller B
 * qualifies. */
#ifndef MM_PRIVATE_B_MAX
#define MM_PRIVATE_B_MAX ((size_t)1 << 20)
#endif
#define MM_ALIGN 64
#define MM_HUGE_PAGE ((size_t)2 << 20)
#define MM_HUGE_MIN ((size_t)4 << 20)
/*
 * A buffers of at least this many bytes per thread (MC = 96: 384 KiB, three quarters of a Zen 3
 * L2) go on a huge page too, for their cache colouring rather than for page faults: L2 is
 * indexed by physical address, and 96 random 4 KiB pages spread unevenly over its 16 page
 * colours, so some sets hold more of A than their 8 ways; a process's luck of the draw then
 * sets its speed. Contiguous, the buffer covers every set evenly. Zen 3 VM, N = 2048, 16
 * alternating `bench-matmul --sizes 2048 --threads 1,2 --impls jobq,openblas` processes each,
 * ratio to OpenBLAS: 2 threads median 0.959 -> 1.010, 0.871-1.100 -> 0.958-1.065 (8 of 16 ->
 * 16 of 16 at 0.95 or more); 1 thread median 0.950 -> 0.979. The small A buffers (MC = 16,
 * 72 KiB) keep ordinary pages: their colours rarely overfill a set, and a fresh 2 MiB page
 * costs a fault that a small multiply would notice.
 */
#define MM_HUGE_A_MIN ((size_t)256 << 10)
/* Largest mr of any kernel (AVX-512: 8). */
#define MM_MR_MAX 8
/* Largest mr * nr of any kernel (AVX-512: 8 x 24). */
#define MM_TILE_MAX (8 * 24)
/* B elements per pack chunk (64 KiB): a chunk takes a few microseconds, long next to the cost
 * of handing it out, short enough that the threads finish packing together. */
#ifndef MM_PACK_CHUNK
#define MM_PACK_CHUNK (1u << 13)
#endif
/* Auto block size: about this many tasks per computing thread (not fewer rows than MC): small
 * tasks keep the last one short, which is what the 2-thread speed-up was losing with 4. */
#ifndef MM_TASKS_PER_THREAD
#define MM_TASKS_PER_THREAD 16
#endif

struct mm_call {
    const struct jobq__mm_kernel *kern;
    size_t m, n, k, lda, ldb, ldc;
    const double *A, *B;
    double *C;
    double *bpack;       /* k x nrtot, see above */
    size_t npanels;      /* ceil(n / nr) */
    size_t nrtot;        /* npanels * nr */
    size_t block_rows;   /* rows of C per task */
    size_t mc_rows;      /* rows of A packed at a time (MC, a multiple of mr) */
    size_t nblocks;
    double *apack;       /* nslots buffers of apack_len doubles */
    size_t apack_len;
    size_t nslots;
    jobq_pool *pool;
    size_t pack_rows;    /* rows of B per pack chunk */
    size_t npack;        /* pack chunks of the fused parallel_for (see run_fused) */
    atomic_size_t packed; /* pack chunks finished */
    size_t npc;          /* k blocks: ceil(k / KC) */
    size_t nslices;      /* (column block, k block) pairs: ceil(npanels / NC panels) * npc */
    atomic_size_t *progress; /* slice-major order: slices done per row block, else NULL */
    size_t bpack_len;    /* private B (see run_private): doubles per slot's copy, else 0 */
    unsigned char *bpacked; /* private B: slot s's copy is packed (written by its owner only) */
};

struct jobq_matmul_workspace {
    atomic_flag busy;
    double *bpack, *apack;
    size_t bpack_cap, apack_cap; /* in doubles */
};

int
jobq_matmul_workspace_create(jobq_matmul_workspace **ret_ws)
{
    jobq_matmul_workspace *ws;

    if (ret_ws == NULL)
        return JOBQ_EINVAL;
    ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return JOBQ_ENOMEM;
    atomic_flag_clear(&ws->busy);
    *ret_ws = ws;
    return 0;
}

void
jobq_matmul_workspace_destroy(jobq_matmul_workspace *ws)
{
    if (ws == NULL)
        return;
    free(ws->bpack);
    free(ws->apack);
    free(ws);
}

void
jobq_matmul_options_init(jobq_matmul_options *opts)
{
    if (opts == NULL)
        return;
    memset(opts, 0, sizeof(*opts));
    opts->block_rows = 0;
    opts->kernel = JOBQ_MATMUL_KERNEL_AUTO;
    opts->dispatch = JOBQ_MATMUL_PARALLEL_FOR;
}

int
jobq_matmul_kernel_supported(jobq_matmul_kernel kernel)
{
    return jobq__mm_kernel_get(kernel) != NULL;
}

jobq_matmul_kernel
jobq_matmul_kernel_best(void)
{
    return jobq__mm_kernel_get(JOBQ_MATMUL_KERNEL_AUTO)->id;
}

static const char *const kernel_names[JOBQ_MATMUL_KERNEL_COUNT] = {
    "auto", "generic", "avx2", "avx512",
};

const char *
jobq_matmul_kernel_name(jobq_matmul_kernel kernel)
{
    if ((unsigned)kernel >= JOBQ_MATMUL_KERNEL_COUNT)
        return "unknown";
    return kernel_names[kernel];
}

int
jobq_matmul_kernel_parse(const char *name, jobq_matmul_kernel *ret_kernel)
{
    unsigned i;

    if (name == NULL || ret_kernel == NULL)
        return JOBQ_EINVAL;
    for (i = 0; i < JOBQ_MATMUL_KERNEL_COUNT; i++) {
        if (strcmp(name, kernel_names[i]) == 0) {
            *ret_kernel = (jobq_matmul_kernel)i;
            return 0;
        }
    }
    return JOBQ_EINVAL;
}

/* Last element + 1 of a rows x cols matrix with stride ld, or 0 on overflow (also in bytes). */
static size_t
extent(size_t rows, size_t cols, size_t ld)
{
    size_t e;

    if ((rows - 1) > (SIZE_MAX - cols) / ld)
        return 0;
    e = (rows - 1) * ld + cols;
    if (e > SIZE_MAX / sizeof(double))
        return 0;
    return e;
}

static int
overlaps(const double *p, size_t plen, const double *q, size_t qlen)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)q;

    return a < b + qlen * sizeof(double) && b < a + plen * sizeof(double);
}

int
jobq__mm_check_args(size_t m, size_t n, size_t k, const double *A, size_t lda, const double *B,
                    size_t ldb, const double *C, size_t ldc, int check_overlap)
{
    size_t ea, eb, ec;

    if (A == NULL || B == NULL || C == NULL || m == 0 || n == 0 || k == 0)
        return JOBQ_EINVAL;
    if (lda < k || ldb < n || ldc < n)
        return JOBQ_EINVAL;
    ea = extent(m, k, lda);
    eb = extent(k, n, ldb);
    ec = extent(m, n, ldc);
    if (ea == 0 || eb == 0 || ec == 0)
        return JOBQ_EOVERFLOW;
    if (check_overlap && (overlaps(C, ec, A, ea) || overlaps(C, ec, B, eb)))
        return JOBQ_EINVAL;
    return 0;
}

/*
 * Aligned buffer for `count` doubles. Big ones (packed B), and any with `huge` (large A
 * buffers, see MM_HUGE_A_MIN), are 2 MiB aligned and advised as huge pages: a fresh allocation
 * of that size is page-faulted in on every call, and under a hypervisor 4 KiB faults cost
 * ~15 us each - as much as the multiply itself at N = 2048.
 */
static void *
alloc_doubles(size_t count, int huge)
{
    size_t bytes = count * sizeof(double), align = MM_ALIGN;
    void *p;

    if (bytes >= MM_HUGE_MIN || huge)
        align = MM_HUGE_PAGE;
    /* aligned_alloc wants a multiple of the alignment. */
    if (bytes > SIZE_MAX - align)
        return NULL;
    bytes = (bytes + align - 1) / align * align;
    p = aligned_alloc(align, bytes);
#ifdef MADV_HUGEPAGE
    if (p != NULL && align == MM_HUGE_PAGE)
        (void)madvise(p, bytes, MADV_HUGEPAGE); /* advice only: failure changes nothing */
#endif
    return p;
}

/* Pack panels [p0, p1) of B: for each k block, a contiguous kc x nr micro-panel per panel. */
/* Copy one row segment of n doubles into a panel; constant sizes let the compiler use a few
 * vector moves instead of a memcpy call per segment. */
static inline void
copy_segment(double *dst, const double *src, size_t n)
{
    switch (n) {
    case 24:
        memcpy(dst, src, 24 * sizeof(double));
        break;
    case 8:
        memcpy(dst, src, 8 * sizeof(double));
        break;
    case 4:
        memcpy(dst, src, 4 * sizeof(double));
        break;
    default:
        memcpy(dst, src, n * sizeof(double));
        break;
    }
}

/*
 * Pack rows [p0, p1) of B into the nr-wide panels. Row by row: each row of B is read once,
 * front to back, and dealt out as one nr-double segment per panel. (Panel by panel, the first
 * version, read B down its columns a row stride apart: at N = 512 every read of a panel fell in
 * the same cache sets, and packing took 4-15 us per panel instead of ~2.)
 */
static void
pack_b_rows(const struct mm_call *mc, double *bpack, size_t p0, size_t p1)
{
    const size_t nr = mc->kern->nr, full = mc->n / nr, rest = mc->n - full * nr;
    size_t p, jp, j, pc, kcur;

    for (p = p0; p < p1; p++) {
        const double *src = mc->B + p * mc->ldb;
        double *dst;
        size_t step;

        pc = p / MM_KC * MM_KC;
        kcur = mc->k - pc < MM_KC ? mc->k - pc : MM_KC;
        /* Panel jp of k block pc starts at pc * nrtot + jp * kcur * nr; row p is its
         * (p - pc)-th group of nr. */
        dst = bpack + pc * mc->nrtot + (p - pc) * nr;
        step = kcur * nr;
        for (jp = 0; jp < full; jp++)
            copy_segment(dst + jp * step, src + jp * nr, nr);
        if (rest != 0) {
            dst += full * step;
            memcpy(dst, src + full * nr, rest * sizeof(double));
            for (j = rest; j < nr; j++)
                dst[j] = 0.0;
        }
    }
}

static int
pack_b(void *ctx, size_t p0, size_t p1)
{
    const struct mm_call *mc = ctx;

    pack_b_rows(mc, mc->bpack, p0, p1);
    return 0;
}

/*
 * One mr-row micro-panel of A from `rows` row pointers (rows < mr: the missing rows are zeros):
 * kcur steps of mr values, one from each row. The step loop is outermost, so the stores are
 * contiguous and the rows are read side by side as sequential streams. pack_a calls it with
 * constant sizes for full panels so that the row loop unrolls. (Row by row, with a stride-mr
 * store per value, this copy was 70 % of compute_rows' own time in a perf profile, ~3 % of a
 * 1000 x 1000 multiply, most of it waiting for A.)
 */
static inline void
pack_a_panel(double *dst, const double *const *rowp, size_t rows, size_t mr, size_t kcur)
{
    size_t p, r;

    for (p = 0; p < kcur; p++) {
        for (r = 0; r < rows; r++)
            dst[p * mr + r] = rowp[r][p];
        for (; r < mr; r++)
            dst[p * mr + r] = 0.0;
    }
}

/* Pack rows [i0, i0 + mcur) x cols [pc, pc + kcur) of A into mr-row micro-panels. */
static void
pack_a(const struct mm_call *mc, double *dst, size_t i0, size_t mcur, size_t pc, size_t kcur)
{
    const size_t mr = mc->kern->mr;
    const double *rowp[MM_MR_MAX];
    size_t ir, r, rows;

    for (ir = 0; ir < mcur; ir += mr) {
        rows = mcur - ir < mr ? mcur - ir : mr;
        for (r = 0; r < rows; r++)
            rowp[r] = mc->A + (i0 + ir + r) * mc->lda + pc;
        if (rows == mr && mr == 6)
            pack_a_panel(dst, rowp, 6, 6, kcur);
        else if (rows == mr && mr == 8)
            pack_a_panel(dst, rowp, 8, 8, kcur);
        else if (rows == mr && mr == 4)
            pack_a_panel(dst, rowp, 4, 4, kcur);
        else
            pack_a_panel(dst, rowp, rows, mr, kcur);
        dst += mr * kcur;
    }
}

/* C rows [r0, r1) for slices [s0, s1) (slice s: column block s / npc, k block s % npc), using
 * A buffer `apack`. */
static void
compute_rows(const struct mm_call *mc, const double *bpack, double *apack, size_t r0, size_t r1,
             size_t s0, size_t s1)
{
    const size_t mr = mc->kern->mr, nr = mc->kern->nr, nc_panels = MM_NC_COLS / nr;
    const jobq__mm_kernel_fn kern = mc->kern->fn;
    size_t s, i0, pc, jc, jend, jp, ir, mcur, kcur, mrcur, ncur, r;
    /* Zeroed once here, not per edge tile: an edge tile that adds to C refreshes only its
     * mrcur x ncur corner from C, but the kernel reads and adds into all mr x nr. Outside the
     * corner it finds zeros on the first edge tile and afterwards whatever earlier edge tiles
     * stored there: their own results, or sums over the zero padding of the packed panels -
     * values the kernel computed (Inf or a quiet NaN only where the data produce them), never
     * uninitialised memory. That part is thrown away; it only must not be garbage (a stray
     * signalling NaN would raise FP exceptions, and MemorySanitizer would flag the read). */
    _Alignas(MM_ALIGN) double tile[MM_TILE_MAX] = {0};
    int load;

    for (s = s0; s < s1; s++) {
        jc = s / mc->npc * nc_panels;
        pc = s % mc->npc * MM_KC;
        jend = mc->npanels - jc < nc_panels ? mc->npanels : jc + nc_panels;
        kcur = mc->k - pc < MM_KC ? mc->k - pc : MM_KC;
        load = pc > 0;
        for (i0 = r0; i0 < r1; i0 += mc->mc_rows) {
            mcur = r1 - i0 < mc->mc_rows ? r1 - i0 : mc->mc_rows;
            pack_a(mc, apack, i0, mcur, pc, kcur);
            for (jp = jc; jp < jend; jp++) {
                const double *bp = bpack + pc * mc->nrtot + jp * kcur * nr;

                ncur = mc->n - jp * nr < nr ? mc->n - jp * nr : nr;
                for (ir = 0; ir < mcur; ir += mr) {
                    const double *ap = apack + ir * kcur;
                    double *cp = mc->C + (i0 + ir) * mc->ldc + jp * nr;

                    mrcur = mcur - ir < mr ? mcur - ir : mr;
                    if (mrcur == mr && ncur == nr) {
                        kern(kcur, ap, bp, cp, mc->ldc, load);
                        continue;
                    }
                    /* Edge tile: through the scratch tile (stride nr). */
                    if (load)
                        for (r = 0; r < mrcur; r++)
                            memcpy(tile + r * nr, cp + r * mc->ldc, ncur * sizeof(double));
                    kern(kcur, ap, bp, tile, nr, load);
                    for (r = 0; r < mrcur; r++)
                        memcpy(cp + r * mc->ldc, tile + r * nr, ncur * sizeof(double));
                }
            }
        }
    }
}

static size_t
slot_of(const struct mm_call *mc)
{
    int w;

    if (mc->pool == NULL)
        return 0;
    w = jobq_pool_worker_index(mc->pool);
    /* Workers use their index; the one calling thread (not a worker) the last slot. */
    return w >= 0 ? (size_t)w : mc->nslots - 1;
}

/* Row block b, slices [s0, s1), with packed B `bpack`, on the calling thread's A buffer. */
static void
run_block(const struct mm_call *mc, const double *bpack, size_t b, size_t s0, size_t s1)
{
    const size_t r0 = b * mc->block_rows;
    const size_t r1 = mc->m - r0 < mc->block_rows ? mc->m : r0 + mc->block_rows;

    compute_rows(mc, bpack, mc->apack + slot_of(mc) * mc->apack_len, r0, r1, s0, s1);
}

static int
run_blocks(void *ctx, size_t b0, size_t b1)
{
    const struct mm_call *mc = ctx;
    size_t b;

    for (b = b0; b < b1; b++)
        run_block(mc, mc->bpack, b, 0, mc->nslices);
    return 0;
}

/* Private B (see the header): row blocks [b0, b1), after packing this thread's own copy of B
 * the first time it gets one. */
static int
run_private(void *ctx, size_t b0, size_t b1)
{
    struct mm_call *mc = ctx;
    const size_t slot = slot_of(mc);
    double *bpack = mc->bpack + slot * mc->bpack_len;
    size_t b;

    if (!mc->bpacked[slot]) {
        pack_b_rows(mc, bpack, 0, mc->k);
        mc->bpacked[slot] = 1;
    }
    for (b = b0; b < b1; b++)
        run_block(mc, bpack, b, 0, mc->nslices);
    return 0;
}

/*
 * Slice-major task t: slice t / nblocks of row block t % nblocks. It must run after the same
 * block's previous slice (the k order of every element of C). That task has the index
 * t - nblocks, so it was handed out earlier and is finished or running on a thread that never
 * waits for a later index: the wait ends. With at least as many row blocks as threads it is
 * rare, since the other threads take nblocks - 1 tasks in between.
 */
static void
run_slice_task(const struct mm_call *mc, size_t t)
{
    size_t b = t % mc->nblocks, s = t / mc->nblocks, spins;

    for (spins = 0; atomic_load_explicit(&mc->progress[b], memory_order_acquire) < s; spins++)
        if (spins % 64 == 63)
            (void)sched_yield();
    run_block(mc, mc->bpack, b, s, s + 1);
    atomic_store_explicit(&mc->progress[b], s + 1, memory_order_release);
}

/*
 * PARALLEL_FOR dispatch in one round (without private B): indices [0, npack) are pack chunks of
 * B, the rest tasks.
 * parallel_for hands indices out in increasing order and a thread runs each index it takes at
 * once, so when a thread takes a row block every pack chunk has been taken by a running thread;
 * it waits (briefly: one chunk) until they are all done. One round instead of two saves the
 * second wake-up of the workers, which at N = 512 on this machine was a tenth of the speed-up.
 */
static int
run_fused(void *ctx, size_t i0, size_t i1)
{
    struct mm_call *mc = ctx;
    size_t i, p0, spins;

    for (i = i0; i < i1; i++) {
        if (i < mc->npack) {
            p0 = i * mc->pack_rows;
            (void)pack_b(mc, p0, mc->k - p0 < mc->pack_rows ? mc->k : p0 + mc->pack_rows);
            atomic_fetch_add_explicit(&mc->packed, 1, memory_order_release);
            continue;
        }
        for (spins = 0; atomic_load_explicit(&mc->packed, memory_order_acquire) < mc->npack;
             spins++)
            if (spins % 64 == 63)
                (void)sched_yield(); /* oversubscribed: let the packing thread run */
        if (mc->progress != NULL)
            run_slice_task(mc, i - mc->npack);
        else
            (void)run_blocks(mc, i - mc->npack, i - mc->npack + 1);
    }
    return 0;
}

/* GROUP dispatch: one job per range [begin, begin + len). */
struct mm_range_job {
    jobq_range_fn fn;
    void *ctx;
    size_t begin, end;
};

static int
range_job_run(void *arg)
{
    const struct mm_range_job *rj = arg;

    return rj->fn(rj->ctx, rj->begin, rj->end);
}

static int
dispatch(struct mm_call *mc, jobq_matmul_dispatch how, size_t count, size_t grain,
         jobq_range_fn fn)
{
    struct mm_range_job *rjs;
    jobq_group *group;
    jobq_job job;
    size_t i, njobs;
    int err, werr;

    if (mc->pool == NULL || count <= grain)
        return fn(mc, 0, count);
    if (how == JOBQ_MATMUL_PARALLEL_FOR)
        return jobq_pool_parallel_for(mc->pool, 0, count, grain, fn, mc);

    njobs = count / grain + (count % grain != 0);
    rjs = calloc(njobs, sizeof(*rjs));
    if (rjs == NULL)
        return JOBQ_ENOMEM;
    err = jobq_group_create(&group, mc->pool);
    if (err != 0) {
        free(rjs);
        return err;
    }
    for (i = 0; i < njobs; i++) {
        rjs[i].fn = fn;
        rjs[i].ctx = mc;
        rjs[i].begin = i * grain;
        rjs[i].end = count - i * grain < grain ? count : (i + 1) * grain;
        job.run = range_job_run;
        job.done = NULL;
        job.arg = &rjs[i];
        err = jobq_group_submit(group, &job);
        if (err != 0)
            break;
    }
    werr = jobq_group_wait(group);
    jobq_group_destroy(group);
    free(rjs);
    return err != 0 ? err : werr;
}

/*
 * The L2 size of CPU 0 in bytes (0 if unknown): sysfs, else sysconf. A hardware fact like the
 * kernel dispatch's CPU flags, so it is read once and cached (first calls that race store the
 * same value).
 */
static size_t
l2_bytes(void)
{
    static atomic_size_t cached; /* 0: not read yet; SIZE_MAX: unknown */
    size_t v = atomic_load_explicit(&cached, memory_order_relaxed);
    char path[80], buf[32];
    unsigned idx;
    long sc;

    if (v != 0)
        return v == SIZE_MAX ? 0 : v;
    v = SIZE_MAX;
    for (idx = 0; idx < 8 && v == SIZE_MAX; idx++) {
        FILE *f;
        int level = 0;
        char unit = 0;
        unsigned long size = 0;

        (void)snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%u/level",
                       idx);
        f = fopen(path, "r");
        if (f == NULL)
            break;
        if (fgets(buf, sizeof(buf), f) != NULL)
            level = atoi(buf);
        (void)fclose(f);
        if (level != 2)
            continue;
        (void)snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%u/size",
                       idx);
        f = fopen(path, "r");
        if (f == NULL)
            break;
        if (fgets(buf, sizeof(buf), f) != NULL && sscanf(buf, "%lu%c", &size, &unit) >= 1)
            v = unit == 'K' ? size << 10 : unit == 'M' ? size << 20 : size;
        (void)fclose(f);
    }
#ifdef _SC_LEVEL2_CACHE_SIZE
    if (v == SIZE_MAX && (sc = sysconf(_SC_LEVEL2_CACHE_SIZE)) > 0)
        v = (size_t)sc;
#else
    (void)sc;
#endif
    if (v == 0)
        v = SIZE_MAX;
    atomic_store_explicit(&cached, v, memory_order_relaxed);
    return v == SIZE_MAX ? 0 : v;
}

int
jobq_matmul(jobq_pool *pool, size_t m, size_t n, size_t k, const double *A, size_t lda,
            const double *B, size_t ldb, double *C, size_t ldc, const jobq_matmul_options *opts)
{
    jobq_matmul_options defaults;
    jobq_matmul_workspace *ws;
    struct mm_call mc;
    size_t threads, mr, nr, mc_rows, total;
    int err, huge_a;

    if (opts == NULL) {
        jobq_matmul_options_init(&defaults);
        opts = &defaults;
    }
    err = jobq__mm_check_args(m, n, k, A, lda, B, ldb, C, ldc, 1);
    if (err != 0)
        return err;
    if ((unsigned)opts->dispatch >= JOBQ_MATMUL_DISPATCH_COUNT ||
        (unsigned)opts->kernel >= JOBQ_MATMUL_KERNEL_COUNT)
        return JOBQ_EINVAL;
    memset(&mc, 0, sizeof(mc));
    mc.kern = jobq__mm_kernel_get(opts->kernel);
    if (mc.kern == NULL)
        return JOBQ_EINVAL;
    if (pool != NULL && opts->dispatch == JOBQ_MATMUL_GROUP && jobq_pool_worker_index(pool) >= 0)
        return JOBQ_EDEADLK;
    mr = mc.kern->mr;
    nr = mc.kern->nr;
    mc.m = m;
    mc.n = n;
    mc.k = k;
    mc.A = A;
    mc.B = B;
    mc.C = C;
    mc.lda = lda;
    mc.ldb = ldb;
    mc.ldc = ldc;
    mc.pool = pool;

    /* Threads that compute: the workers, plus the caller under parallel_for. */
    threads = 1;
    if (pool != NULL) {
        threads = jobq_pool_threads(pool);
        if (opts->dispatch == JOBQ_MATMUL_PARALLEL_FOR)
            threads++;
    }
    /* A buffers: one per worker (by index) and one for a calling thread that is not a worker. */
    mc.nslots = pool != NULL ? (size_t)jobq_pool_threads(pool) + 1 : 1;

    if (k > MM_MC_LARGE_B / n)
        mc_rows = MM_MC_LARGE;
    else
        mc_rows = l2_bytes() >= MM_BIG_L2 ? MM_MC_BIG_L2 : MM_MC_SMALL;
#if MM_MC_TASKS > 0
    if (mc_rows > (m + MM_MC_TASKS * threads - 1) / (MM_MC_TASKS * threads))
        mc_rows = (m + MM_MC_TASKS * threads - 1) / (MM_MC_TASKS * threads);
#endif
    mc_rows = (mc_rows + mr - 1) / mr * mr;
    if (opts->block_rows != 0) {
        mc.block_rows = opts->block_rows;
    } else {
        /* Several blocks per thread for balance, each a whole number of register tiles. */
        mc.block_rows = (m + threads * MM_TASKS_PER_THREAD - 1) / (threads * MM_TASKS_PER_THREAD);
        /* Whole MC slices (a 96-row slice cut to 96 + 32 streams B for 32 rows only); one
         * block when only the calling thread computes. */
        mc.block_rows = (mc.block_rows + mc_rows - 1) / mc_rows * mc_rows;
        if (pool == NULL)
            mc.block_rows = m;
    }
    if (mc.block_rows > m)
        mc.block_rows = m;
    mc.nblocks = m / mc.block_rows + (m % mc.block_rows != 0);

    mc.npanels = n / nr + (n % nr != 0);
    mc.nrtot = mc.npanels * nr;
    if (k > SIZE_MAX / sizeof(double) / mc.nrtot)
        return JOBQ_EOVERFLOW;
    total = k * mc.nrtot;
    if (mc.block_rows < mc_rows)
        mc_rows = (mc.block_rows + mr - 1) / mr * mr;
    mc.mc_rows = mc_rows;
    mc.apack_len = mc_rows * (k < MM_KC ? k : MM_KC);
    /* Keep every slot's buffer on its own cache lines. */
    mc.apack_len = (mc.apack_len + 7) / 8 * 8;
    huge_a = mc.apack_len * sizeof(double) >= MM_HUGE_A_MIN;

    mc.npc = k / MM_KC + (k % MM_KC != 0);
    mc.nslices = (mc.npanels + MM_NC_COLS / nr - 1) / (MM_NC_COLS / nr) * mc.npc;

    /* Private B: small B under parallel_for, every computing thread packs its own copy. */
    if (opts->dispatch == JOBQ_MATMUL_PARALLEL_FOR && pool != NULL && mc.nblocks > 1 &&
        mc.nslices == 1 && total <= MM_PRIVATE_B_MAX && mc.nslots <= MM_PRIVATE_B_MAX / total) {
        mc.bpack_len = (total + 7) / 8 * 8;
        mc.bpacked = calloc(mc.nslots, 1);
        if (mc.bpacked == NULL)
            return JOBQ_ENOMEM;
        total = mc.bpack_len * mc.nslots;
    }
    ws = opts->workspace;
    if (ws != NULL) {
        if (atomic_flag_test_and_set(&ws->busy)) {
            free(mc.bpacked);
            return JOBQ_EAGAIN;
        }
        /* Grow, never shrink: the old contents do not matter, so free first. */
        if (ws->bpack_cap < total) {
            free(ws->bpack);
            ws->bpack = alloc_doubles(total, 0);
            ws->bpack_cap = ws->bpack != NULL ? total : 0;
        }
        if (ws->apack_cap < mc.apack_len * mc.nslots) {
            free(ws->apack);
            ws->apack = alloc_doubles(mc.apack_len * mc.nslots, huge_a);
            ws->apack_cap = ws->apack != NULL ? mc.apack_len * mc.nslots : 0;
        }
        mc.bpack = ws->bpack;
        mc.apack = ws->apack;
    } else {
        mc.bpack = alloc_doubles(total, 0);
        mc.apack = alloc_doubles(mc.apack_len * mc.nslots, huge_a);
    }
    if (mc.bpack == NULL || mc.apack == NULL) {
        err = JOBQ_ENOMEM;
        goto out;
    }

    mc.pack_rows = MM_PACK_CHUNK / mc.nrtot + 1;
    if (opts->dispatch == JOBQ_MATMUL_PARALLEL_FOR && mc.bpack_len != 0) {
        err = dispatch(&mc, opts->dispatch, mc.nblocks, 1, run_private);
    } else if (opts->dispatch == JOBQ_MATMUL_PARALLEL_FOR) {
        size_t ntasks = mc.nblocks;

        if (pool != NULL && mc.nblocks > 1 && mc.nslices > 1) {
            mc.progress = calloc(mc.nblocks, sizeof(*mc.progress));
            if (mc.progress == NULL) {
                err = JOBQ_ENOMEM;
                goto out;
            }
            for (size_t b = 0; b < mc.nblocks; b++)
                atomic_init(&mc.progress[b], 0);
            ntasks = mc.nblocks * mc.nslices;
        }
        mc.npack = k / mc.pack_rows + (k % mc.pack_rows != 0);
        atomic_init(&mc.packed, 0);
        err = dispatch(&mc, opts->dispatch, mc.npack + ntasks, 1, run_fused);
    } else {
        /* Group jobs could sit behind each other in one worker's batch: two rounds. */
        err = dispatch(&mc, opts->dispatch, k, mc.pack_rows, pack_b);
        if (err == 0)
            err = dispatch(&mc, opts->dispatch, mc.nblocks, 1, run_blocks);
    }
out:
    free(mc.progress);
    free(mc.bpacked);
    if (ws != NULL) {
        atomic_flag_clear(&ws->busy);
    } else {
        free(mc.bpack);
        free(mc.apack);
    }
    return err;
}
