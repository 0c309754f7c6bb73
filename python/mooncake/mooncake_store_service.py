"""python -m mooncake.mooncake_store_service --config=FILE: the store service."""
from mooncake._binary import store

if __name__ == "__main__":
    store()
