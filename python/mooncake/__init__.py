"""mooncake: a distributed KV cache for LLM inference (the L3 tier of SGLang's HiCache).

`from mooncake.store import MooncakeDistributedStore, ReplicateConfig` is the client API. The
wheel also carries the `mooncake` binary, run by `python -m mooncake.http_metadata_server`,
`python -m mooncake.mooncake_store_service` and the `mooncake_master` command.
"""
