"""bt's validation split in Python: the images pipeline.Holdout holds out of
a training set, drawn exactly as Go's math/rand/v2 draws them, so that the
same-recipe reference (same_recipe.py) trains and evaluates on the very
images bt does.

pipeline.Holdout takes the first n of rand.New(rand.NewPCG(seed,
0x6f7574)).Perm(len) and keeps each part in the data's order; bt's
DataConfig holds out n = math.Round(fraction · len) images. The Go test
TestHoldoutMatchesPython (pipeline/) checks Holdout against the indices this
module writes (tools/fixtures/holdout.py).

  /usr/bin/python3 tools/reference/valsplit.py 60000 0.1 0   # prints the held-out indices
"""
import math
import sys

M64 = (1 << 64) - 1
M128 = (1 << 128) - 1
# math/rand/v2's PCG: a 128-bit LCG with these constants, output by DXSM.
MUL = (2549297995355413924 << 64) | 4865540595714422341
INC = (6364136223846793005 << 64) | 1442695040888963407
CHEAP_MUL = 0xDA942042E4DD58B5
# pipeline.Holdout's second PCG seed ("out").
HOLDOUT_STREAM = 0x6F7574


class PCG:
    """Go's rand.NewPCG(seed1, seed2) and the Rand methods Perm needs."""

    def __init__(self, seed1, seed2):
        self.state = ((seed1 & M64) << 64) | (seed2 & M64)

    def uint64(self):
        self.state = (self.state * MUL + INC) & M128
        hi, lo = self.state >> 64, self.state & M64
        hi ^= hi >> 32
        hi = (hi * CHEAP_MUL) & M64
        hi ^= hi >> 48
        return (hi * (lo | 1)) & M64

    def uint64n(self, n):
        """Rand.uint64n on a 64-bit machine: Lemire's multiply-shift with
        rejection, masking for powers of two."""
        if n & (n - 1) == 0:
            return self.uint64() & (n - 1)
        p = self.uint64() * n
        hi, lo = p >> 64, p & M64
        if lo < n:
            thresh = ((1 << 64) - n) % n
            while lo < thresh:
                p = self.uint64() * n
                hi, lo = p >> 64, p & M64
        return hi

    def perm(self, n):
        """Rand.Perm: the identity shuffled by Fisher–Yates from the end."""
        p = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.uint64n(i + 1)
            p[i], p[j] = p[j], p[i]
        return p


def go_round(x):
    """Go's math.Round: half away from zero."""
    f = math.floor(abs(x))
    r = f + 1 if abs(x) - f >= 0.5 else f
    return int(math.copysign(r, x))


def count(fraction, length):
    """How many of length training images bt holds out for fraction."""
    return go_round(fraction * length)


def holdout(length, n, seed):
    """pipeline.Holdout's split of length images: (kept, held) indices, each
    in ascending order."""
    if n < 1 or n >= length:
        raise ValueError(f"holding out {n} of {length} images: want at least 1 and fewer than all")
    out = [False] * length
    for i in PCG(seed, HOLDOUT_STREAM).perm(length)[:n]:
        out[i] = True
    keep = [i for i, o in enumerate(out) if not o]
    held = [i for i, o in enumerate(out) if o]
    return keep, held


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: valsplit.py LENGTH FRACTION SEED")
    length, fraction, seed = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    print("\n".join(map(str, holdout(length, count(fraction, length), seed)[1])))
