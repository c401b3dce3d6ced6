#!/usr/bin/env bash
# bench-letters-python.sh - the exercise's Python approach (collections.Counter per line,
# set(range('а','я')) letters) on a slice of the same text, with a read()-and-discard of the same
# slice in the same run as the peer. Both are the best of the same number of runs
# (JOBQ_BENCH_REPS, default 3, as bench-letters). Prints '#' lines (cores, interpreter, build
# type, date) and CSV rows like bench-letters.
#
# Usage: bench-letters-python.sh [--help] [MiB]   (default 32; the corpus or fortunes-ru as source)
# Exit status: 0 done; 2 bad argument or setting; 77 no /usr/bin/python3 or no Russian text.
set -euo pipefail
usage() {
    cat <<EOF
usage: bench-letters-python.sh [--help] [MiB]
The exercise's Python letter counter (collections.Counter per line) on MiB (1..4096, default 32)
of the corpus texts, against read() of the same bytes in the same run. Prints '#' lines, then CSV:
  name,encoding,kernel,bytes,seconds,gb_per_s,ratio_to_read
Environment:
  JOBQ_BENCH_REPS   runs of each, the best is reported, 1..1000 (default 3)
  JOBQ_CORPUS_DIR   corpus root holding ru/ (else /usr/share/games/fortunes/ru)
Exit status: 0 done; 2 bad argument or setting; 77 no /usr/bin/python3 or no Russian text.
EOF
}
case ${1:-} in
-h | --help)
    usage
    exit 0
    ;;
-*)
    echo "bench-letters-python.sh: unknown option '$1'" >&2
    usage >&2
    exit 2
    ;;
esac
[ $# -le 1 ] || {
    echo "bench-letters-python.sh: one MiB argument at most" >&2
    usage >&2
    exit 2
}
# Decimal only, no leading zero (bash arithmetic would read 010 as octal, and a word as a
# variable name).
mib=${1:-32}
[[ $mib =~ ^[1-9][0-9]{0,3}$ ]] && [ "$mib" -le 4096 ] || {
    echo "bench-letters-python.sh: MiB '$mib': expected an integer from 1 to 4096" >&2
    exit 2
}
reps=${JOBQ_BENCH_REPS:-3}
[[ $reps =~ ^[1-9][0-9]{0,3}$ ]] && [ "$reps" -le 1000 ] || {
    echo "bench-letters-python.sh: JOBQ_BENCH_REPS='$reps': expected an integer from 1 to 1000" >&2
    exit 2
}
py=/usr/bin/python3
[ -x "$py" ] || { echo "# /usr/bin/python3 missing: Python baseline skipped"; exit 77; }
src=${JOBQ_CORPUS_DIR:-$(dirname "$0")/../../../shared/corpus}/ru
[ -d "$src" ] || src=/usr/share/games/fortunes/ru
# Without a single non-empty file the loop below would never grow the text.
[ -n "$(find "$src" -maxdepth 1 -type f -size +0 -print -quit 2>/dev/null)" ] || {
    echo "# no Russian text (corpus or fortunes-ru): Python baseline skipped"
    exit 77
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
while [ "$(stat -c %s "$tmp/text" 2>/dev/null || echo 0)" -lt $((mib << 20)) ]; do
    find "$src" -maxdepth 1 -type f -print0 | sort -z | xargs -0 -r cat >>"$tmp/text"
done
head -c $((mib << 20)) "$tmp/text" >"$tmp/slice"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "# bench-letters-python: Python letter counter vs read(), 1 thread, page cache warm," \
    "best of $reps"
echo "# cores: $(nproc) usable (nproc), cpu: ${cpu:-unknown}"
echo "# interpreter: $($py --version 2>&1) ($py), build type: n/a (interpreted; no jobq code runs)"
echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ), load average: $(cat /proc/loadavg)"
echo "# text: $mib MiB of $src"
"$py" - "$tmp/slice" "$reps" <<'PY'
import collections, os, sys, time
path, reps = sys.argv[1], int(sys.argv[2])
size = os.path.getsize(path)
def best(f):
    return min(f() for _ in range(reps))
def read_discard():
    t = time.perf_counter()
    with open(path, 'rb', buffering=0) as f:
        while f.read(256 * 1024):
            pass
    return time.perf_counter() - t
letters = set(chr(c) for c in range(ord('а'), ord('я') + 1)) | {'ё'}
def counter_per_line():
    t = time.perf_counter()
    total = collections.Counter()
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            c = collections.Counter(line.lower())
            for k in list(c):
                if k not in letters:
                    del c[k]
            total.update(c)
    counter_per_line.total = sum(total.values())
    return time.perf_counter() - t
read_discard()  # warm the page cache, as bench-letters does before timing
tr = best(read_discard)
tp = best(counter_per_line)
print("name,encoding,kernel,bytes,seconds,gb_per_s,ratio_to_read")
print(f"read,utf-8,-,{size},{tr:.4f},{size / tr / 1e9:.3f},1.000")
print(f"python_counter,utf-8,per_line,{size},{tp:.4f},{size / tp / 1e9:.3f},{tr / tp:.4f}")
print(f"# python counted {counter_per_line.total} letters")
PY
