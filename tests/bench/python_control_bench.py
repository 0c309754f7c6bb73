"""Control-plane latencies through the wheel, SGLang's shapes: `batch_is_exist` of 128 keys, a
single 4 KiB `get` and `put`, and `batch_is_exist` followed by `batch_get_into` of the same 128 x
4 KiB keys against `batch_get_into` alone. Prints one JSON line per figure. Used by
scripts/bench-control.sh.

  python_control_bench.py MASTER METADATA ROUNDS          latencies, one process
  python_control_bench.py MASTER METADATA SECONDS exists  batch_is_exist keys/s until SECONDS pass
"""
import hashlib
import json
import os
import sys
import time

import torch

from mooncake.store import MooncakeDistributedStore

BATCH, SIZE = 128, 4096


def page_key(prefix, i):
    """A key shaped as SGLang's: a page's 64-hex-digit hash, the TP rank, K or V (68 bytes)."""
    return hashlib.sha256(f"{prefix}-{i}".encode()).hexdigest() + "_0_k"


def p50_us(samples):
    samples.sort()
    return samples[len(samples) // 2] * 1e6


def timed(rounds, call):
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return samples


def main():
    master, metadata, amount = sys.argv[1], sys.argv[2], float(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) > 4 else "latency"
    store = MooncakeDistributedStore()
    assert store.setup("127.0.0.1", metadata, 0, 16 << 20, "tcp", "", master) == 0
    pool = torch.randint(0, 256, (BATCH * SIZE,), dtype=torch.uint8)
    assert store.register_buffer(pool.data_ptr(), pool.numel()) == 0
    ptrs = [pool.data_ptr() + i * SIZE for i in range(BATCH)]
    sizes = [SIZE] * BATCH
    prefix = f"control-{os.getpid()}"
    keys = [page_key(prefix, i) for i in range(BATCH)]
    assert store.batch_put_from(keys, ptrs, sizes) == [0] * BATCH

    if mode == "exists":
        done, end = 0, time.monotonic() + amount
        start = time.monotonic()
        while time.monotonic() < end:
            assert store.batch_is_exist(keys) == [1] * BATCH
            done += BATCH
        print(json.dumps({"op": "batch_is_exist", "keys_per_s": done / (time.monotonic() - start)}))
    else:
        rounds = int(amount)
        exists = timed(rounds, lambda: store.batch_is_exist(keys))
        print(json.dumps({"op": "batch_is_exist", "batch": BATCH, "p50_us": p50_us(exists)}))
        gets = timed(rounds, lambda: store.get(keys[0]))
        assert store.get(keys[0]) == bytes(pool[:SIZE].numpy())
        print(json.dumps({"op": "get", "size": SIZE, "p50_us": p50_us(gets)}))
        value = bytes(SIZE)
        put_keys = iter(page_key(f"{prefix}-put", i) for i in range(rounds))
        puts = timed(rounds, lambda: store.put(next(put_keys), value))
        print(json.dumps({"op": "put", "size": SIZE, "p50_us": p50_us(puts)}))
        alone = timed(rounds, lambda: store.batch_get_into(keys, ptrs, sizes))

        def exists_then_get():
            store.batch_is_exist(keys)
            store.batch_get_into(keys, ptrs, sizes)

        both = timed(rounds, exists_then_get)
        print(json.dumps({"op": "batch_get_into", "batch": BATCH, "size": SIZE,
                          "p50_us": p50_us(alone)}))
        print(json.dumps({"op": "batch_is_exist+batch_get_into", "batch": BATCH, "size": SIZE,
                          "p50_us": p50_us(both)}))
        store.remove_all()
    store.unregister_buffer(pool.data_ptr())
    store.close()


if __name__ == "__main__":
    main()
