#!/usr/bin/env bash
# bench/letters-mpi/bench.sh [--help] [BUILD_DIR] - what MPI costs on one machine.
#
# Bytes/s of jobq-letters-mpi under `mpirun -np 1` and `-np 2` with one thread per rank (-j 1),
# against jobq-letters with 2 threads (-j 2, its default here) on the same input in the same run,
# page cache warm. Wall time includes mpirun's start-up (the price a user pays); a separate row
# measures that start-up alone on an empty file. The input is one big UTF-8 file (split into
# ranges across ranks) plus 2000 small files, built from the shared corpus when present (else
# random Russian text) under $TMPDIR.
#
# Environment: JOBQ_BENCH_MB (big file size, default 1024), JOBQ_BENCH_REPS (default 5: the
# median is reported; of an even count, the mean of the two middle runs), MPIRUN (default
# mpirun).
# Output: '#' lines (cores, compiler and build type of BUILD_DIR, mpirun, date), then CSV, one
# row per configuration.
# Exit status: 0 done; 1 a timed command failed (its command line, exit status and the end of
# its output go to stderr, and no row is printed for it); 2 bad command line or setting.
set -euo pipefail
usage() {
    cat <<'EOF'
usage: bench/letters-mpi/bench.sh [--help] [BUILD_DIR]
Bytes/s of jobq-letters-mpi (mpirun -np 1 and -np 2, -j 1) against jobq-letters (-j 2 and -j 1)
on the same input in the same run, page cache warm; per rank count, a start-up row times mpirun
on an empty file. BUILD_DIR: a meson build with -Dmpi=enabled (default: build-mpi in the source
root; a relative path is taken from the current directory).
Environment:
  JOBQ_BENCH_MB    size of the big file in MiB, 1..65536 (default 1024)
  JOBQ_BENCH_REPS  timed runs per row, the median is reported, 1..1000 (default 5)
  MPIRUN           the mpirun to use (default mpirun)
Exit status: 0 done; 1 a timed command failed; 2 bad command line or setting.
EOF
}
case ${1:-} in
-h | --help)
    usage
    exit 0
    ;;
-*)
    echo "bench.sh: unknown option '$1'" >&2
    usage >&2
    exit 2
    ;;
esac
[ $# -le 1 ] || {
    echo "bench.sh: one BUILD_DIR at most" >&2
    usage >&2
    exit 2
}
# A BUILD_DIR given on the command line is relative to where the user stands, not to the
# source root this script moves to.
build=
[ $# -eq 0 ] || build=$(realpath -m -- "$1")
cd "$(dirname "$0")/../.."
build=${build:-build-mpi}
single=$build/src/apps/letters/jobq-letters
mpi=$build/src/apps/letters-mpi/jobq-letters-mpi
mb=${JOBQ_BENCH_MB:-1024}
reps=${JOBQ_BENCH_REPS:-5}
mpirun=${MPIRUN:-mpirun}
corpus=../shared/corpus/ru
# Decimal only, no leading zero: bash arithmetic would read 010 as octal and a word as a
# variable name.
[[ $mb =~ ^[1-9][0-9]{0,4}$ ]] && [ "$mb" -le 65536 ] || {
    echo "bench.sh: JOBQ_BENCH_MB='$mb': expected an integer from 1 to 65536" >&2
    exit 2
}
[[ $reps =~ ^[1-9][0-9]{0,3}$ ]] && [ "$reps" -le 1000 ] || {
    echo "bench.sh: JOBQ_BENCH_REPS='$reps': expected an integer from 1 to 1000" >&2
    exit 2
}
[ -x "$single" ] && [ -x "$mpi" ] || {
    echo "bench.sh: build $build with -Dmpi=enabled first (scripts/test.d/mpi does)" >&2
    exit 2
}
command -v "$mpirun" >/dev/null || {
    echo "bench.sh: MPIRUN '$mpirun' not found" >&2
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

# run_or_die CMD...: run CMD once, its output to $tmp/out; if it fails, say what failed and end
# the script. A failed run is no measurement and must not become a row: MPIRUN=/bin/false used
# to time as the fastest tool of all, with exit status 0.
run_or_die() {
    local rc=0
    "$@" >"$tmp/out" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        {
            printf 'bench.sh: exit status %d from:' "$rc"
            printf ' %q' "$@"
            printf '\nbench.sh: the end of its output:\n'
            tail -n 20 "$tmp/out"
        } >&2
        exit 1
    fi
}

# time_cmd VAR CMD...: VAR = median wall seconds of REPS runs of CMD after one untimed warm-up
# run (page cache, libraries); of an even count, the mean of the two middle runs. The result
# goes into VAR, not to stdout: inside $(...) the `exit` of run_or_die would end only the
# subshell, and the caller would go on with an empty or bogus time.
time_cmd() {
    local var=$1 i t0 t1 ts=() med
    shift
    run_or_die "$@"
    for ((i = 0; i < reps; i++)); do
        t0=$(date +%s%N)
        run_or_die "$@"
        t1=$(date +%s%N)
        ts+=($(((t1 - t0) / 1000)))
    done
    med=$(printf '%s\n' "${ts[@]}" | sort -n | awk '{ a[NR] = $1 }
        END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
              printf "%.6f", m / 1e6 }')
    printf -v "$var" '%s' "$med"
}

# intro WHAT CODE: run python CODE over `meson introspect BUILD WHAT` (parsed into `data`).
intro() {
    meson introspect "$build" "$1" 2>/dev/null | /usr/bin/python3 -c "import json, shlex, sys
data = json.load(sys.stdin)
$2" 2>/dev/null
}
# The build type and compiler the build itself used, from its own introspection: the C
# compiler meson recorded for the jobq-letters-mpi target (whatever CC was at setup time), asked
# for its version; a ccache/sccache wrapper in front is skipped.
buildtype=$(intro --buildoptions \
    'print([o["value"] for o in data if o["name"] == "buildtype"][0])') || buildtype=unknown
cc_exe=$(intro --targets '
t = [t for t in data if t["name"] == "jobq-letters-mpi"][0]
exe = [s for s in t["target_sources"] if s.get("language") == "c"][0]["compiler"]
if len(exe) > 1 and exe[0].rsplit("/", 1)[-1] in ("ccache", "sccache"):
    exe = exe[1:]
print(shlex.join(exe))') || cc_exe=
cc_version=
[ -z "$cc_exe" ] || cc_version=$(eval "$cc_exe --version" 2>/dev/null | head -n 1) || true
mpirun_version=$("$mpirun" --version 2>/dev/null | head -n 1) || true
echo "# jobq-letters-mpi vs jobq-letters, page cache warm, median of $reps runs"
echo "# cores: $(nproc)"
echo "# compiler: ${cc_version:-unknown} (${cc_exe:-not in the meson introspection of $build});" \
    "build type: $buildtype; ${mpirun_version:-unknown mpirun version} ($mpirun)"
echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ); input: $bytes bytes (${mb} MiB file + 2000 small files)"
echo "tool,ranks,threads_per_rank,bytes,seconds,mb_per_s,ratio_vs_single_j2,startup_s,mb_per_s_after_startup"

time_cmd t_single "$single" -q -j 2 -f json "$tmp/in"
row() { # tool ranks threads seconds startup_seconds
    /usr/bin/python3 -c 'import sys
tool, r, t, b, s, st, ref = sys.argv[1:]
b = int(b); s = float(s); st = float(st); ref = float(ref)
net = b / (s - st) / 1e6 if s > st else float("nan")
print("%s,%s,%s,%d,%.4f,%.1f,%.3f,%.4f,%.1f" % (tool, r, t, b, s, b / s / 1e6, ref / s, st, net))' \
        "$1" "$2" "$3" "$bytes" "$4" "$5" "$t_single"
}
row jobq-letters 1 2 "$t_single" 0
time_cmd t "$single" -q -j 1 -f json "$tmp/in"
row jobq-letters 1 1 "$t" 0
for np in 1 2; do
    # mpirun + MPI_Init + MPI_Finalize on an empty file: the fixed cost of every MPI run.
    time_cmd t_start "$mpirun" "${mpiargs[@]}" -np "$np" "$mpi" -q -j 1 -f json "$tmp/empty.txt"
    time_cmd t "$mpirun" "${mpiargs[@]}" -np "$np" "$mpi" -q -j 1 -f json "$tmp/in"
    row jobq-letters-mpi "$np" 1 "$t" "$t_start"
done
