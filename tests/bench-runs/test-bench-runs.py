#!/usr/bin/python3
"""Checks bench/bench-runs against a fake benchmark whose figures change from run to run.

The fake prints what the real benches print ('#' lines, a CSV header, rows, a speed-up line);
run i (1, 2, 3) gives ratio 1.0 + i / 10 for one row, and the row 'only-odd' only in odd
runs. A second fake prints bench-queue's columns (configurations told apart only by numeric
columns, a ratio left empty in one row), or with "dup" two rows that cannot be told apart.
Usage: test-bench-runs.py BENCH-RUNS. Exit 0 when every check passes.
"""

import os
import subprocess
import sys
import tempfile

FAKE = r'''
import os, sys
counter = sys.argv[1]
n = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
open(counter, "w").write(str(n))
if len(sys.argv) > 2 and n == int(sys.argv[2]):
    print("fake: failing on purpose", file=sys.stderr)
    sys.exit(3)
print("# fake bench, run %d" % n)
print("# ceiling: seen in run %d" % n)
print("n,threads,impl,best_s,ratio")
print("128,2,jobq,%.3f,%.3f" % (0.010 * n, 1.0 + n / 10))
print("128,2,peer,0.020,1.000")
if n % 2 == 1:
    print("256,1,only-odd,0.5,%d" % n)
print("# speed-up N = 128, T = 2: jobq %.2fx peer 1.50x" % (1.5 + n / 10))
'''

# bench-queue's header: producers x consumers are numbers, and so is every figure.
FAKE_QUEUE = r'''
import sys
print("# fake queue bench")
print("system,producers,consumers,capacity,items,items_per_s,ratio_vs_glib")
for pc in (1, 2, 4):
    print("jobq,%d,%d,1024,20000,%d,%s" % (pc, pc, 1000 * pc, "" if pc == 1 else "1.5"))
if sys.argv[1:] == ["dup"]:
    print("jobq,4,4,1024,20000,9999,1.5")
'''

failures = 0


def check(what, ok, detail=""):
    global failures
    if not ok:
        failures += 1
        print("FAIL: %s %s" % (what, detail))
    else:
        print("ok: %s" % what)


def run(tool, args):
    return subprocess.run([sys.executable, tool] + args, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)


def main():
    tool = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        fake = os.path.join(tmp, "fake.py")
        with open(fake, "w") as f:
            f.write(FAKE)
        counter = os.path.join(tmp, "count")

        p = run(tool, ["--runs", "3", "--show", "ceiling", "--", sys.executable, fake, counter])
        check("three good runs exit 0", p.returncode == 0, p.stderr)
        lines = p.stdout.splitlines()
        check("header names the key and summary columns",
              "n,threads,impl,column,runs,median,min,max,values" in lines, p.stdout)
        check("median, min, max and per-run values of a changing figure",
              "128,2,jobq,ratio,3,1.2,1.1,1.3,1.1 1.2 1.3" in lines, p.stdout)
        check("a constant figure", "128,2,peer,best_s,3,0.02,0.02,0.02,0.02 0.02 0.02" in lines,
              p.stdout)
        check("a row missing from a run counts only the runs that have it",
              "256,1,only-odd,ratio,2,2,1,3,1 - 3" in lines, p.stdout)
        check("speed-up lines are collected per name",
              "# speed-up N = 128; T = 2,jobq,3,1.7,1.6,1.8,1.6 1.7 1.8" in lines, p.stdout)
        check("--show passes each run's matching '#' lines",
              "# run 2: ceiling: seen in run 2" in lines, p.stdout)
        check("the command ran exactly three times", open(counter).read() == "3")

        os.remove(counter)
        p = run(tool, ["--runs", "3", "--value", "ratio", "--key", "impl", "--",
                       sys.executable, fake, counter])
        check("--key and --value choose the columns",
              p.returncode == 0 and "impl,column,runs,median,min,max,values" in p.stdout
              and "best_s" not in p.stdout.split("impl,column")[1], p.stdout + p.stderr)

        os.remove(counter)
        p = run(tool, ["--runs", "3", "--", sys.executable, fake, counter, "2"])
        check("a failing run makes the whole call fail with 1", p.returncode == 1, p.stdout)
        check("its exit status and output are shown",
              "run 2" in p.stderr and "status 3" in p.stderr and "failing on purpose" in p.stderr,
              p.stderr)

        p = run(tool, ["--runs", "2"])
        check("no command: usage error 2", p.returncode == 2 and "no command" in p.stderr,
              p.stderr)
        p = run(tool, ["--runs", "0", "--", "true"])
        check("--runs 0: usage error 2", p.returncode == 2, p.stderr)
        os.remove(counter)
        p = run(tool, ["--runs", "1", "--key", "nosuch", "--", sys.executable, fake, counter])
        check("an unknown key column: error 2 naming it",
              p.returncode == 2 and "'nosuch'" in p.stderr, p.stderr)
        p = run(tool, ["--runs", "1", "--", os.path.join(tmp, "missing-bench")])
        check("a command that cannot start: error 1 naming it",
              p.returncode == 1 and "missing-bench" in p.stderr, p.stderr)
        fq = os.path.join(tmp, "fake-queue.py")
        with open(fq, "w") as f:
            f.write(FAKE_QUEUE)
        p = run(tool, ["--runs", "2", "--", sys.executable, fq])
        lines = p.stdout.splitlines()
        check("numeric configuration columns (producers, consumers, items) are in the key",
              p.returncode == 0
              and "system,producers,consumers,capacity,items,column,runs,median,min,max,values"
              in lines
              and all("jobq,%d,%d,1024,20000,items_per_s,2,%d,%d,%d,%d %d"
                      % (pc, pc, 1000 * pc, 1000 * pc, 1000 * pc, 1000 * pc, 1000 * pc)
                      in lines for pc in (1, 2, 4)), p.stdout + p.stderr)
        check("a figure left empty in one row stays a value, not a key",
              "jobq,2,2,1024,20000,ratio_vs_glib,2,1.5,1.5,1.5,1.5 1.5" in lines, p.stdout)
        p = run(tool, ["--runs", "2", "--", sys.executable, fq, "dup"])
        check("two rows of one run with the same key: error 1 naming the key, no summary",
              p.returncode == 1 and "same key" in p.stderr and "producers=4" in p.stderr
              and "items_per_s" not in p.stdout, p.stdout + p.stderr)
        p = run(tool, ["--runs", "1", "--key", "system", "--", sys.executable, fq])
        check("a --key that merges rows is refused too",
              p.returncode == 1 and "same key" in p.stderr, p.stderr)

        p = run(tool, ["--runs", "1", "--", "true"])
        check("a command without CSV output: error 1", p.returncode == 1 and "no CSV" in p.stderr,
              p.stderr)
    print("%d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
