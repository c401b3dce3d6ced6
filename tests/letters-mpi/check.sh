#!/usr/bin/env bash
# tests/letters-mpi/check.sh SINGLE MPI - jobq-letters-mpi against jobq-letters, byte for byte.
#
# SINGLE is the jobq-letters executable, MPI is jobq-letters-mpi. Environment: MPIRUN (default
# mpirun), JOBQ_CORPUS (the shared corpus; its part is skipped with a message when absent),
# JOBQ_MPI_NPS (rank counts, default "1 2 3").
#
# For every rank count, the same command line is run through both tools and stdout (JSON,
# table, CSV), the exit status and the sorted stderr lines must be identical:
#   - the shared corpus (46 Russian texts);
#   - a generated tree: one big UTF-8 file (64 MiB, split into ranges across ranks), a big
#     cp1251 file, 3000 tiny files in nested directories, and bad inputs (empty file, binary
#     file, UTF-16 file, a symlink and a FIFO inside the tree, a dangling symlink named on the
#     command line) so errors raised on any rank come back attributed to their path;
#   - a file that vanishes while the ranks count (the single tool's open hook).
# Then failure: a rank killed by SIGKILL (from inside, and with kill -9 from outside) must make
# the job exit non-zero with nothing on stdout.
set -u

single=$1
mpi=$2
# The same tools with their test hooks compiled in (for the vanishing file and the dying ranks).
single_hooked=$3
mpi_hooked=$4
mpirun=${MPIRUN:-mpirun}
nps=${JOBQ_MPI_NPS:-1 2 3}
corpus=${JOBQ_CORPUS:-}
py=/usr/bin/python3

mpiargs=(--oversubscribe)
[ "$(id -u)" -eq 0 ] && mpiargs+=(--allow-run-as-root)
# Keep Open MPI to shared memory on one host: no network probing, no warnings on stderr, and
# no UCX start-up (slow here).
mpiargs+=(--mca btl self,vader --mca btl_vader_single_copy_mechanism none --mca pml ob1
    --mca osc ^ucx)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/jobq-letters-mpi.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
checks=0

fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# run_both NAME NP ARGS...: run both tools, compare stdout, exit status, sorted stderr.
run_both() {
    local name=$1 np=$2 rs rm
    shift 2
    checks=$((checks + 1))
    timeout 300 "$single" "$@" >"$tmp/s.out" 2>"$tmp/s.err"
    rs=$?
    timeout 300 "$mpirun" "${mpiargs[@]}" -np "$np" "$mpi" "$@" >"$tmp/m.out" 2>"$tmp/m.err"
    rm=$?
    if [ "$rs" -ne "$rm" ]; then
        fail "$name (np=$np): exit status $rm, jobq-letters gave $rs"
        sed 's/^/    /' "$tmp/m.err" | head -20
        return
    fi
    if ! cmp -s "$tmp/s.out" "$tmp/m.out"; then
        fail "$name (np=$np): stdout differs from jobq-letters"
        diff "$tmp/s.out" "$tmp/m.out" | head -10 | sed 's/^/    /'
        return
    fi
    # mpirun adds banners of its own (between dashed lines) when rank 0 exits non-zero.
    awk '/^--------------------+$/ { inside = !inside; next } !inside' "$tmp/m.err" >"$tmp/m.err2"
    if ! cmp -s <(LC_ALL=C sort "$tmp/s.err") <(LC_ALL=C sort "$tmp/m.err2"); then
        fail "$name (np=$np): stderr lines differ from jobq-letters"
        diff <(LC_ALL=C sort "$tmp/s.err") <(LC_ALL=C sort "$tmp/m.err2") | head -10 |
            sed 's/^/    /'
        return
    fi
    echo "ok: $name (np=$np, exit $rs, $(wc -c <"$tmp/s.out") bytes identical)"
}

# --- the shared corpus -----------------------------------------------------------------------
if [ -n "$corpus" ] && [ -d "$corpus/ru" ]; then
    for np in $nps; do
        run_both "corpus json" "$np" -f json "$corpus/ru"
        run_both "corpus table" "$np" "$corpus/ru"
        run_both "corpus csv --sort count" "$np" -f csv --sort count "$corpus/ru"
        run_both "corpus per-file --yo merge" "$np" -f json --per-file --yo merge "$corpus/ru"
        run_both "corpus chunks 100K --yo ignore" "$np" -f json -m chunks --chunk-size 100K \
            --yo ignore "$corpus/ru"
    done
    # The totals are also right, not just equal: compare with the independent reference.
    checks=$((checks + 1))
    if timeout 300 "$mpirun" "${mpiargs[@]}" -np 2 "$mpi" -f json "$corpus/ru" >"$tmp/c.json" &&
        $py - "$tmp/c.json" "$corpus/expected.json" <<'EOF'; then
import json, sys
got = json.load(open(sys.argv[1]))
exp = json.load(open(sys.argv[2]))["dir"]
ok = (got["files"] == exp["files"] and got["total"] == exp["total"]
      and got["letters"] == exp["letters"])
if not ok:
    print("jobq-letters-mpi:", got["files"], got["total"], "expected.json:", exp["files"],
          exp["total"])
    sys.exit(1)
EOF
        echo "ok: corpus totals (np=2)"
    else
        fail "corpus totals differ from expected.json"
    fi
else
    echo "SKIP: shared corpus not found (JOBQ_CORPUS=${corpus:-unset}); corpus checks skipped"
fi

# --- a generated tree: one big file and many tiny ones, plus bad inputs ------------------------
tree=$tmp/tree
mkdir -p "$tree"
$py - "$tree" <<'EOF' || { echo "FAIL: cannot generate the test tree"; exit 1; }
import os, random, sys
root = sys.argv[1]
rnd = random.Random(6)
lower = [chr(c) for c in range(0x430, 0x450)] + ["ё"]
alpha = lower + [c.upper() for c in lower] + list("abcxyz,.;!?-0123456789") + ["й", "е\u0308"]
def text(n_words):
    words = []
    for _ in range(n_words):
        words.append("".join(rnd.choice(alpha) for _ in range(rnd.randint(1, 12))))
        if rnd.random() < 0.05:
            words.append("\n")
    return " ".join(words)
# One big UTF-8 file (64 MiB): a 1 MiB random block repeated with a varying prefix, so chunk
# boundaries fall inside two-byte letters.
block = text(120000).encode()
with open(os.path.join(root, "big.txt"), "wb") as f:
    size = 0
    i = 0
    while size < 64 << 20:
        piece = ("%d " % i).encode() + block
        f.write(piece)
        size += len(piece)
        i += 1
# A big cp1251 file (12 MiB), split with the encoding detected once.
cp = text(60000).encode("cp1251", errors="ignore")
with open(os.path.join(root, "big-cp1251.txt"), "wb") as f:
    for i in range(max(1, (12 << 20) // len(cp))):
        f.write(cp)
# Many tiny files in nested directories.
for i in range(3000):
    d = os.path.join(root, "tiny", "d%02d" % (i % 37), "e%d" % (i % 5))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%04d.txt" % i), "w", encoding="utf-8") as f:
        f.write(text(rnd.randint(0, 20)))
bad = os.path.join(root, "bad")
os.makedirs(bad)
open(os.path.join(bad, "empty.txt"), "wb").close()
with open(os.path.join(bad, "binary.dat"), "wb") as f:
    f.write(b"\x00\x01" + "привет".encode() * 100)
with open(os.path.join(bad, "utf16.txt"), "wb") as f:
    f.write(b"\xff\xfe" + "привет мир".encode("utf-16-le"))
with open(os.path.join(bad, "koi8.txt"), "wb") as f:
    f.write(text(3000).encode("koi8-r", errors="ignore"))
os.symlink("../big-cp1251.txt", os.path.join(bad, "link.txt"))
os.mkfifo(os.path.join(bad, "fifo"))
EOF
ln -s "$tmp/does-not-exist" "$tmp/dangling"

for np in $nps; do
    run_both "tree json" "$np" -f json "$tree"
    run_both "tree table" "$np" "$tree"
    run_both "tree csv" "$np" -f csv "$tree"
    run_both "tree json + dangling symlink argument" "$np" -f json "$tree" "$tmp/dangling"
    run_both "tree per-file --follow" "$np" -f json --per-file --follow "$tree"
    run_both "tree chunks, odd chunk size" "$np" -f json -m chunks --chunk-size 1000003 "$tree"
    run_both "tree -j 1 --binary" "$np" -f json -j 1 --binary "$tree"
    run_both "big file alone, --encoding utf-8" "$np" -f json -e utf-8 "$tree/big.txt"
done
run_both "nothing readable" 2 -f json "$tmp/dangling"
run_both "usage error" 2 --format yaml "$tree"

# --- a file that vanishes while the ranks count ------------------------------------------------
# The single tool's hook makes every worker wait before open() until $hook.go exists; the file
# is removed in between. Whichever rank counts it must report it as jobq-letters does.
vanish_run() {
    local tool=$1 out=$2 np=$3 hook=$tmp/hook pid rc i
    local dir=$tmp/vanish
    rm -rf "$dir" "$hook".*
    mkdir -p "$dir"
    for i in 1 2 3 4 5 6; do
        printf 'Съешь же ещё этих мягких французских булок %d\n' "$i" >"$dir/f$i.txt"
    done
    if [ "$tool" = single ]; then
        JOBQ_LETTERS_TEST_HOOK=open:$hook timeout 120 "$single_hooked" -f json "$dir" >"$out" \
            2>/dev/null &
    else
        JOBQ_LETTERS_TEST_HOOK=open:$hook timeout 120 "$mpirun" "${mpiargs[@]}" -x \
            JOBQ_LETTERS_TEST_HOOK -np "$np" "$mpi_hooked" -f json "$dir" >"$out" 2>/dev/null &
    fi
    pid=$!
    for i in $(seq 1 1000); do
        [ -e "$hook.ready" ] && break
        sleep 0.02
    done
    rm -f "$dir/f3.txt"
    touch "$hook.go"
    wait "$pid"
    rc=$?
    echo "$rc" >>"$out"
}
for np in 2 3; do
    checks=$((checks + 1))
    vanish_run single "$tmp/v.single" 1
    vanish_run mpi "$tmp/v.mpi" "$np"
    if cmp -s "$tmp/v.single" "$tmp/v.mpi" && grep -q 'vanished before it could be read' \
        "$tmp/v.mpi"; then
        echo "ok: file vanishing during the run (np=$np): same error, exit $(tail -1 "$tmp/v.mpi")"
    else
        fail "file vanishing during the run (np=$np)"
        diff "$tmp/v.single" "$tmp/v.mpi" | head -6 | sed 's/^/    /'
    fi
done

# --- a rank that dies ---------------------------------------------------------------------------
checks=$((checks + 1))
JOBQ_LETTERS_MPI_TEST_HOOK=die:1 timeout 120 "$mpirun" "${mpiargs[@]}" -x \
    JOBQ_LETTERS_MPI_TEST_HOOK -np 2 "$mpi_hooked" -f json "$tree" >"$tmp/d.out" 2>"$tmp/d.err"
rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ ! -s "$tmp/d.out" ]; then
    echo "ok: rank 1 killing itself -> exit $rc, nothing on stdout"
else
    fail "rank 1 killing itself: exit $rc, stdout $(wc -c <"$tmp/d.out") bytes"
fi

for np in 2 3; do
    checks=$((checks + 1))
    victim=$((np - 1))
    rm -f "$tmp/pid"
    JOBQ_LETTERS_MPI_TEST_HOOK=stall:$victim:$tmp/pid timeout 120 "$mpirun" "${mpiargs[@]}" -x \
        JOBQ_LETTERS_MPI_TEST_HOOK -np "$np" "$mpi_hooked" -f json "$tree" >"$tmp/k.out" \
        2>"$tmp/k.err" &
    job=$!
    for i in $(seq 1 1500); do
        [ -s "$tmp/pid" ] && break
        sleep 0.02
    done
    if [ -s "$tmp/pid" ]; then
        kill -9 "$(cat "$tmp/pid")"
    fi
    wait "$job"
    rc=$?
    if [ -s "$tmp/pid" ] && [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ ! -s "$tmp/k.out" ]; then
        echo "ok: kill -9 of rank $victim of $np -> exit $rc, nothing on stdout"
    else
        fail "kill -9 of rank $victim of $np: exit $rc, stdout $(wc -c <"$tmp/k.out") bytes"
        head -5 "$tmp/k.err" | sed 's/^/    /'
    fi
done

echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]
