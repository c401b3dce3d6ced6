#!/usr/bin/env bash
# bench-letters-python.sh - the exercise's Python approach (collections.Counter per line,
# set(range('а','я')) letters) on a slice of the same text, with a read()-and-discard of the same
# slice in the same run as the peer. Prints '#' lines and CSV rows like bench-letters.
# Usage: bench-letters-python.sh [MiB]   (default 32; the corpus or fortunes-ru as source)
set -euo pipefail
py=/usr/bin/python3
[ -x "$py" ] || { echo "# /usr/bin/python3 missing: Python baseline skipped"; exit 77; }
mib=${1:-32}
src=${JOBQ_CORPUS_DIR:-$(dirname "$0")/../../../shared/corpus}/ru
[ -d "$src" ] || src=/usr/share/games/fortunes/ru
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
while [ "$(stat -c %s "$tmp/text" 2>/dev/null || echo 0)" -lt $((mib << 20)) ]; do
    find "$src" -maxdepth 1 -type f -print0 | sort -z | xargs -0 cat >>"$tmp/text"
done
head -c $((mib << 20)) "$tmp/text" >"$tmp/slice"
echo "# bench-letters-python: $($py --version 2>&1), $mib MiB of $src, date $(date -Is)"
"$py" - "$tmp/slice" <<'PY'
import collections, os, sys, time
path = sys.argv[1]
size = os.path.getsize(path)
def best(f, reps=3):
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
tr = best(read_discard)
tp = best(counter_per_line, 1)
print("name,encoding,kernel,bytes,seconds,gb_per_s,ratio_to_read")
print(f"read,utf-8,-,{size},{tr:.4f},{size / tr / 1e9:.3f},1.000")
print(f"python_counter,utf-8,per_line,{size},{tp:.4f},{size / tp / 1e9:.3f},{tr / tp:.4f}")
print(f"# python counted {counter_per_line.total} letters")
PY
