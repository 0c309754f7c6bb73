"""python -m mooncake.http_metadata_server [--host H] [--port P]: the HTTP metadata service."""
from mooncake._binary import metadata

if __name__ == "__main__":
    metadata()
