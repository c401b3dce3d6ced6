#!/usr/bin/python3
"""numpy-check.py - the exercise's own check: jobq-matmul against numpy.matmul.

Usage: numpy-check.py JOBQ_MATMUL_EXE

Writes random .npy inputs of several shapes into a temporary directory, runs
`jobq-matmul --load A.npy B.npy --save C.npy`, and compares C with numpy.matmul(A, B)
element-wise with the bound |C - R| <= 2 k u (|A| |B|), u = 2^-53 (never bit equality, never
numpy's default allclose). Exits 77 (meson's "skipped") with a message when numpy is missing.
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    print("SKIP: numpy is not importable by", sys.executable, "(install python3-numpy)")
    sys.exit(77)

SHAPES = [(1, 1, 1), (7, 13, 29), (128, 128, 128), (100, 37, 250), (3, 300, 2), (257, 129, 65)]


def main():
    exe = sys.argv[1]
    rng = np.random.default_rng(20240607)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="jobq-numpy-") as tmp:
        for m, k, n in SHAPES:
            a = rng.uniform(-1.0, 1.0, size=(m, k))
            b = rng.uniform(-1.0, 1.0, size=(k, n))
            pa, pb, pc = (os.path.join(tmp, x) for x in ("A.npy", "B.npy", "C.npy"))
            np.save(pa, a)
            np.save(pb, b)
            run = subprocess.run([exe, "--load", pa, pb, "--save", pc, "-j", "2"],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                print(f"FAIL {m}x{k}x{n}: exit {run.returncode}: {run.stderr.strip()}")
                failures += 1
                continue
            c = np.load(pc)
            r = np.matmul(a, b)
            bound = 2.0 * k * 2.0**-53 * np.matmul(np.abs(a), np.abs(b))
            bad = np.abs(c - r) > bound
            if c.shape != r.shape or c.dtype != np.float64 or bad.any():
                print(f"FAIL {m}x{k}x{n}: shape {c.shape}, {int(bad.sum())} elements outside "
                      f"the bound")
                failures += 1
            else:
                ratio = float(np.max(np.abs(c - r) / np.where(bound > 0, bound, 1.0)))
                print(f"ok   {m}x{k}x{n}: max |C-R|/bound = {ratio:.3g}")
        # The executable must refuse a Fortran-order file and a float32 file.
        np.save(os.path.join(tmp, "F.npy"), np.asfortranarray(rng.uniform(size=(4, 3))))
        np.save(os.path.join(tmp, "S.npy"), rng.uniform(size=(3, 4)).astype(np.float32))
        run = subprocess.run([exe, "--load", os.path.join(tmp, "F.npy"),
                              os.path.join(tmp, "S.npy")], capture_output=True, text=True)
        if run.returncode != 3 or "F.npy" not in run.stderr or "S.npy" not in run.stderr:
            print(f"FAIL refusal: exit {run.returncode}, stderr: {run.stderr.strip()}")
            failures += 1
        else:
            print("ok   Fortran-order and float32 inputs refused:", run.stderr.strip().replace(
                "\n", " | "))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
