"""Benchmark: throughput of kerasformer's pure-numpy CRC-32C (`convert.tf_checkpoint.crc32c`).

TF checkpoints store a CRC-32C of every tensor, so reading a checkpoint runs this
over all its bytes. Times the checksum of random data (best of `--repeat` runs) and,
where one of them is importable, a native CRC-32C package (`google_crc32c` or
`crc32c`) on the same bytes, checking that both give the same value. `zlib.crc32`
(another polynomial, always available) is shown as the speed of a C CRC loop.

    python tools/bench_crc32c.py [--megabytes 64] [--repeat 3]
"""
import argparse
import time
import zlib

import numpy as np

from kerasformer.convert.tf_checkpoint import crc32c


def best_time(function, data, repeat):
    """(result, best seconds) of `repeat` calls of `function(data)`."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(data)
        times.append(time.perf_counter() - start)
    return result, min(times)


def native_crc32c():
    """A native CRC-32C `bytes -> int` and its name, or (None, None)."""
    try:
        import google_crc32c

        return google_crc32c.value, "google_crc32c"
    except ImportError:
        pass
    try:
        import crc32c as crc32c_package

        return crc32c_package.crc32c, "crc32c"
    except ImportError:
        return None, None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=64, help="size of the data (MiB)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best is kept")
    args = parser.parse_args()

    array = np.random.default_rng(0).integers(0, 256, args.megabytes << 20, dtype=np.uint8)
    data = array.tobytes()
    rows = []
    ours, seconds = best_time(crc32c, array, args.repeat)
    rows.append(("kerasformer crc32c (numpy)", seconds))
    native, name = native_crc32c()
    if native is not None:
        theirs, native_seconds = best_time(native, data, args.repeat)
        if theirs != ours:
            raise SystemExit(f"crc32c mismatch: kerasformer {ours:#010x}, {name} {theirs:#010x}")
        rows.append((f"{name} (native)", native_seconds))
    _, zlib_seconds = best_time(zlib.crc32, data, args.repeat)
    rows.append(("zlib.crc32 (other polynomial)", zlib_seconds))

    print(f"{len(data) >> 20} MiB of random bytes, best of {args.repeat}; "
          f"crc32c = {ours:#010x}")
    print(f"{'':32} {'seconds':>9} {'MB/s':>9} {'vs kerasformer':>15}")
    for label, elapsed in rows:
        print(f"{label:32} {elapsed:9.3f} {len(data) / elapsed / 1e6:9.0f} "
              f"{seconds / elapsed:14.1f}x")
    if native is None:
        print("(no native CRC-32C package importable: google_crc32c or crc32c)")


if __name__ == "__main__":
    main()
