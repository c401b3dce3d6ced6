#!/usr/bin/env bash
# bench/letters-mpi/bench.sh [BUILD_DIR] - what MPI costs on one machine.
#
# Bytes/s of jobq-letters-mpi under `mpirun -np 1` and `-np 2` with one thread per rank (-j 1),
# against jobq-letters with 2 threads (-j 2, its default here) on the same input in the same run,
# page cache warm. Wall time includes mpirun's start-up (the price a user pays); a separate row
# measures that start-up alone on an empty file. The input is one big UTF-8 file (split into
# ranges across ranks) plus 2000 small files, built from the shared corpus when present (else
# random Russian text) under $TMPDIR.
#
# Environment: JOBQ_BENCH_MB (big file size, default 1024), JOBQ_BENCH_REPS (default 5: the
# median is reported), MPIRUN (default mpirun).
# Output: '#' lines (cores, compiler, build type, date), then CSV, one row per configuration.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-mpi}
single=$build/src/apps/letters/jobq-letters
mpi=$build/src/apps/letters-mpi/jobq-letters-mpi
mb=${JOBQ_BENCH_MB:-1024}
reps=${JOBQ_BENCH_REPS:-5}
mpirun=${MPIRUN:-mpirun}
corpus=../shared/corpus/ru
[ -x "$single" ] && [ -x "$mpi" ] || {
    echo "build $build with -Dmpi=enabled first (scripts/test.d/mpi does)" >&2
    exit 2
}
# One host: shared memory only, and no UCX start-up (it alone costs ~0.3 s per run here).
mpiargs=(--oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none
    --mca pml ob1 --mca osc ^ucx)
[ "$(id -u)" -eq 0 ] && mpiargs+=(--allow-run-as-root)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/jobq-letters-mpi-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp/in" "$mb" "$corpus" <<'EOF'
import os, random, sys
root, mb, corpus = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(os.path.join(root, "small"))
if os.path.isdir(corpus):
    text = b"".join(open(os.path.join(corpus, n), "rb").read() for n in sorted(os.listdir(corpus)))
else:
    rnd = random.Random(1)
    abc = [chr(c) for c in range(0x430, 0x450)] + [" ", " ", "\n", ","]
    text = "".join(rnd.choice(abc) for _ in range(4 << 20)).encode()
with open(os.path.join(root, "big.txt"), "wb") as f:
    left = mb << 20
    while left > 0:
        f.write(text[:left])
        left -= min(left, len(text))
for i in range(2000):
    off = (i * 7919) % (len(text) - 20000)
    with open(os.path.join(root, "small", "f%04d.txt" % i), "wb") as f:
        f.write(text[off:off + 1000 + (i * 37) % 15000])
EOF
: >"$tmp/empty.txt"
bytes=$(du -sb --apparent-size "$tmp/in" | cut -f1)

# median wall seconds of REPS runs of a command (output discarded)
time_cmd() {
    local i t0 t1 ts=()
    "$@" >/dev/null 2>&1 # warm-up (page cache, libraries)
    for ((i = 0; i < reps; i++)); do
        t0=$(date +%s%N)
        "$@" >/dev/null 2>&1
        t1=$(date +%s%N)
        ts+=($(((t1 - t0) / 1000)))
    done
    printf '%s\n' "${ts[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.6f", a[int((NR + 1) / 2)] / 1e6 }'
}

cc_version=$(cc --version | head -1)
buildtype=$(meson introspect "$build" --buildoptions 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="buildtype"][0])' ||
    echo unknown)
echo "# jobq-letters-mpi vs jobq-letters, page cache warm, median of $reps runs"
echo "# cores: $(nproc)"
echo "# compiler: $cc_version; build type: $buildtype; $("$mpirun" --version | head -1)"
echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ); input: $bytes bytes (${mb} MiB file + 2000 small files)"
echo "tool,ranks,threads_per_rank,bytes,seconds,mb_per_s,ratio_vs_single_j2,startup_s,mb_per_s_after_startup"

t_single=$(time_cmd "$single" -q -j 2 -f json "$tmp/in")
row() { # tool ranks threads seconds startup_seconds
    /usr/bin/python3 -c 'import sys
tool, r, t, b, s, st, ref = sys.argv[1:]
b = int(b); s = float(s); st = float(st); ref = float(ref)
net = b / (s - st) / 1e6 if s > st else float("nan")
print("%s,%s,%s,%d,%.4f,%.1f,%.3f,%.4f,%.1f" % (tool, r, t, b, s, b / s / 1e6, ref / s, st, net))' \
        "$1" "$2" "$3" "$bytes" "$4" "$5" "$t_single"
}
row jobq-letters 1 2 "$t_single" 0
row jobq-letters 1 1 "$(time_cmd "$single" -q -j 1 -f json "$tmp/in")" 0
for np in 1 2; do
    # mpirun + MPI_Init + MPI_Finalize on an empty file: the fixed cost of every MPI run.
    t_start=$(time_cmd "$mpirun" "${mpiargs[@]}" -np "$np" "$mpi" -q -j 1 -f json "$tmp/empty.txt")
    row jobq-letters-mpi "$np" 1 \
        "$(time_cmd "$mpirun" "${mpiargs[@]}" -np "$np" "$mpi" -q -j 1 -f json "$tmp/in")" \
        "$t_start"
done
