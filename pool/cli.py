"""The ``pool`` command."""
import sys


def main(argv=None) -> int:
    print("pool: nothing to run yet", file=sys.stderr)
    return 2
