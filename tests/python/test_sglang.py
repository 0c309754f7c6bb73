"""How SGLang's HiCache drives the store (SPEC.md §7): each TP rank is its own client with its host
KV pool registered once; pages are checked with batch_is_exist, written with batch_put_from and
read back with batch_get_into, one pointer and size per page part; keys `<hash>_<rank>_k/_v`
(MHA) or `<hash>_k` (MLA). Data is compared tensor by tensor."""
import hashlib

import pytest
import torch

from mooncake.store import MooncakeDistributedStore

MiB = 1 << 20


class Rank:
    """One TP rank: a client and a registered host KV pool of `pages` pages of K and V."""

    def __init__(self, cluster, rank, pages, page_bytes, segment_size):
        self.rank = rank
        self.store = MooncakeDistributedStore()
        # SGLang divides its global_segment_size among its TP ranks.
        assert self.store.setup("127.0.0.1", cluster.metadata_url, segment_size, 16 * MiB, "tcp", "",
                                cluster.master) == 0
        elements = page_bytes // 2  # bf16
        self.k = torch.zeros((pages, elements), dtype=torch.bfloat16)
        self.v = torch.zeros((pages, elements), dtype=torch.bfloat16)
        self.page_bytes = page_bytes
        for pool in (self.k, self.v):
            assert self.store.register_buffer(pool.data_ptr(), pool.numel() * pool.element_size()) == 0
        self.warm_up()

    def warm_up(self):
        key = f"warmup_{self.rank}_{id(self)}"
        value = bytes(range(256)) * 16  # 4 KiB
        assert self.store.put(key, value) == 0
        assert self.store.is_exist(key) == 1
        assert self.store.get(key) == value

    def ptr(self, pool, page):
        return pool.data_ptr() + page * self.page_bytes

    def close(self):
        for pool in (self.k, self.v):
            assert self.store.unregister_buffer(pool.data_ptr()) == 0
        assert self.store.close() == 0


def page_hashes(n, salt):
    return [hashlib.sha256(f"{salt}-{i}".encode()).hexdigest()[:32] for i in range(n)]


@pytest.mark.parametrize("tp_size,page_bytes", [(1, 512 * 1024), (2, 256 * 1024), (4, 64 * 1024)])
def test_mha_pages_round_trip_per_rank(cluster, tp_size, page_bytes):
    pages = 48
    ranks = [Rank(cluster, r, pages, page_bytes, 8 * MiB) for r in range(tp_size)]
    hashes = page_hashes(pages, f"mha{tp_size}")
    for r in ranks:
        torch.manual_seed(r.rank)
        r.k.copy_(torch.randn_like(r.k, dtype=torch.float32).to(torch.bfloat16))
        r.v.copy_(torch.randn_like(r.v, dtype=torch.float32).to(torch.bfloat16))
        keys, ptrs, sizes = [], [], []
        for page, h in enumerate(hashes):
            keys += [f"{h}_{r.rank}_k", f"{h}_{r.rank}_v"]
            ptrs += [r.ptr(r.k, page), r.ptr(r.v, page)]
            sizes += [page_bytes, page_bytes]
        # Skip what is stored already (nothing yet), put, then every page exists.
        assert r.store.batch_is_exist(keys) == [0] * len(keys)
        assert r.store.batch_put_from(keys, ptrs, sizes) == [0] * len(keys)
        assert r.store.batch_is_exist(keys) == [1] * len(keys)
        # A second put of the same pages is a success that changes nothing.
        assert r.store.batch_put_from(keys[:4], ptrs[:4], sizes[:4]) == [0] * 4
    for r in ranks:
        k_saved, v_saved = r.k.clone(), r.v.clone()
        r.k.zero_()
        r.v.zero_()
        # Read back into pages in reverse order, as a prefetch lands wherever the pool has room.
        keys, ptrs, sizes = [], [], []
        for page, h in enumerate(hashes):
            target = pages - 1 - page
            keys += [f"{h}_{r.rank}_k", f"{h}_{r.rank}_v"]
            ptrs += [r.ptr(r.k, target), r.ptr(r.v, target)]
            sizes += [page_bytes, page_bytes]
        assert r.store.batch_get_into(keys, ptrs, sizes) == [page_bytes] * len(keys)
        for page in range(pages):
            assert torch.equal(r.k[pages - 1 - page], k_saved[page]), (r.rank, page)
            assert torch.equal(r.v[pages - 1 - page], v_saved[page]), (r.rank, page)
    # Ranks do not see each other's pages under their own keys.
    if tp_size > 1:
        assert ranks[1].store.batch_is_exist([f"{hashes[0]}_0_k", f"{hashes[0]}_9_k"]) == [1, 0]
    for r in ranks:
        r.store.batch_remove([f"{h}_{r.rank}_{p}" for h in hashes for p in "kv"], force=True)
        r.close()


def test_mla_pages_are_shared_by_ranks(cluster):
    """MLA: one latent cache object per page (`<hash>_k`), written by rank 0, read by every rank."""
    pages, page_bytes = 32, 4 * MiB + 64 * 1024  # about a DeepSeek-V3 page
    writer = Rank(cluster, 0, pages, page_bytes, 0)
    reader = Rank(cluster, 1, pages, page_bytes, 0)
    hashes = page_hashes(pages, "mla")
    keys = [f"{h}_k" for h in hashes]
    writer.k.copy_(torch.randn_like(writer.k, dtype=torch.float32).to(torch.bfloat16))
    assert writer.store.batch_put_from(keys, [writer.ptr(writer.k, p) for p in range(pages)],
                                       [page_bytes] * pages) == [0] * pages
    assert reader.store.batch_is_exist(keys) == [1] * pages
    got = reader.store.batch_get_into(keys, [reader.ptr(reader.k, p) for p in range(pages)],
                                      [page_bytes] * pages)
    assert got == [page_bytes] * pages
    assert torch.equal(reader.k, writer.k)
    writer.store.batch_remove(keys, force=True)
    writer.close()
    reader.close()
