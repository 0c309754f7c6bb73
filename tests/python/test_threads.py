"""Eight Python threads doing batch calls on one store object at once: every byte right, and the
GIL released around the transfers, so Python threads run while a call moves data."""
import sys
import threading
import time

import torch

from mooncake.store import MooncakeDistributedStore

MiB = 1 << 20


def test_eight_threads_share_one_store(store):
    threads, rounds, batch, size = 8, 20, 16, 64 * 1024
    pools = [torch.zeros(2 * batch * size, dtype=torch.uint8) for _ in range(threads)]
    for pool in pools:
        assert store.register_buffer(pool.data_ptr(), pool.numel()) == 0
    errors = []

    def work(t):
        pool = pools[t]
        src, dst = pool.data_ptr(), pool.data_ptr() + batch * size
        try:
            for r in range(rounds):
                keys = [f"thr_{t}_{r}_{i}" for i in range(batch)]
                pool[: batch * size] = torch.randint(0, 256, (batch * size,), dtype=torch.uint8)
                ptrs = [src + i * size for i in range(batch)]
                assert store.batch_is_exist(keys) == [0] * batch
                assert store.batch_put_from(keys, ptrs, [size] * batch) == [0] * batch
                assert store.batch_get_into(keys, [dst + i * size for i in range(batch)],
                                            [size] * batch) == [size] * batch
                assert torch.equal(pool[: batch * size], pool[batch * size:]), (t, r)
                assert store.batch_remove(keys, force=True) == [0] * batch
        except AssertionError as e:  # reported by the main thread
            errors.append(e)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    for pool in pools:
        assert store.unregister_buffer(pool.data_ptr()) == 0


def test_the_gil_is_released_during_transfers(store):
    """While one thread is inside a large batch_get_into, another thread's calls complete.
    A call that held the GIL through its transfer would let the other thread run only in the
    microseconds before and after it, never in the middle of it, however long the transfer and
    however often Python switches threads. So the big thread repeats its transfer until a small
    call has finished in the middle half of one (on a loaded 2-CPU machine the scheduler may keep
    the small thread waiting through a transfer or two), and fails if forty transfers pass without
    one: a held GIL fails every time, a released one passes at the first or second."""
    batch, size = 128, 1 * MiB  # 128 MiB: several milliseconds even through shared memory
    pool = torch.zeros(batch * size, dtype=torch.uint8)
    assert store.register_buffer(pool.data_ptr(), pool.numel()) == 0
    keys = [f"gil_{i}" for i in range(batch)]
    ptrs = [pool.data_ptr() + i * size for i in range(batch)]
    assert store.batch_put_from(keys, ptrs, [size] * batch) == [0] * batch
    assert store.put("gil_small", b"s") == 0

    finished = []
    windows = []
    inside = []
    stop = threading.Event()

    def big():
        try:
            for _ in range(40):
                start = time.monotonic()
                assert store.batch_get_into(keys, ptrs, [size] * batch) == [size] * batch
                end = time.monotonic()
                windows.append((start, end))
                quarter = (end - start) / 4
                inside.extend(t for t in list(finished) if start + quarter < t < end - quarter)
                if inside:
                    return
        finally:
            stop.set()

    def small():
        while not stop.is_set():
            assert store.is_exist("gil_small") == 1
            finished.append(time.monotonic())

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=big), threading.Thread(target=small)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert inside, f"no call finished in the middle of any of {len(windows)} transfers ({len(finished)} in all)"
    assert store.batch_remove(keys + ["gil_small"], force=True) == [0] * (batch + 1)
    assert store.unregister_buffer(pool.data_ptr()) == 0
