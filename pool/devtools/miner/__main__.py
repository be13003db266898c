"""``python -m pool.devtools.miner``: the demo miner's command line, the same as ``pool miner``."""

import sys

from pool.devtools.miner.cli import main

if __name__ == "__main__":
    sys.exit(main())
