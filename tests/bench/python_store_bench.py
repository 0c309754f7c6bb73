"""batch_put_from / batch_get_into throughput through the wheel, shaped like `mooncake bench store`
(fresh keys for every put, space made untimed when the cluster fills; gets cycle through objects
written before the clock starts). Prints one JSON line per case. Used by scripts/bench-python.sh.

  python_store_bench.py MASTER METADATA SECONDS SIZE:BATCH...
"""
import json
import sys
import time

import torch

from mooncake.store import MooncakeDistributedStore


def run(store, op, size, batch, seconds, capacity):
    pool = torch.zeros(size * batch, dtype=torch.uint8)
    pool[:] = torch.randint(0, 256, pool.shape, dtype=torch.uint8)
    assert store.register_buffer(pool.data_ptr(), pool.numel()) == 0
    ptrs = [pool.data_ptr() + i * size for i in range(batch)]
    sizes = [size] * batch
    kept = max(1, capacity * 8 // 10 // (size * batch))
    stored, next_key = [], 0

    def put():
        nonlocal next_key
        keys = [f"pybench-{op}-{size}-{batch}-{next_key + i}" for i in range(batch)]
        next_key += batch
        assert store.batch_put_from(keys, ptrs, sizes) == [0] * batch
        stored.extend(keys)

    if op == "get":
        for _ in range(min(kept, 8)):
            put()
    done, latencies, cursor = 0, [], 0
    end = time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < end:
        if op == "put":
            if len(stored) + batch > kept * batch:
                store.batch_remove(stored, force=True)
                stored.clear()
            t0 = time.monotonic()
            put()
        else:
            keys = [stored[(cursor + i) % len(stored)] for i in range(batch)]
            cursor += batch
            t0 = time.monotonic()
            assert store.batch_get_into(keys, ptrs, sizes) == sizes
        latencies.append(time.monotonic() - t0)
        done += batch
    elapsed = time.monotonic() - start
    store.batch_remove(stored, force=True)
    assert store.unregister_buffer(pool.data_ptr()) == 0
    latencies.sort()
    return {"op": op, "size": size, "batch": batch, "gb_per_s": done * size / elapsed / 1e9,
            "p50_us": latencies[len(latencies) // 2] * 1e6}


def main():
    master, metadata, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    store = MooncakeDistributedStore()
    assert store.setup("127.0.0.1", metadata, 0, 16 << 20, "tcp", "", master) == 0
    for shape in sys.argv[4:]:
        size, batch = (int(x) for x in shape.split(":"))
        for op in ("put", "get"):
            print(json.dumps(run(store, op, size, batch, seconds, 2 << 30)), flush=True)
    store.close()


if __name__ == "__main__":
    main()
