"""python -m mooncake.mooncake_master [flags]: the master, like the `mooncake_master` command."""
from mooncake._binary import master

if __name__ == "__main__":
    master()
