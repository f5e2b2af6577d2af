"""Bare read loop: the floor for any pipeline over the corpus (walk + open + read every file, no parsing).

    python bench/bare_read.py <artifacts root>

Prints one JSON line: files and bytes read.
"""

from __future__ import annotations

import json
import os
import sys


def read_all(root: str) -> tuple[int, int]:
    """Read every file under `root` once; returns (files, bytes)."""
    files = 0
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()  # deterministic order, like the pipeline's sorted listing
        for name in sorted(filenames):
            with open(os.path.join(dirpath, name), "rb") as fh:
                total += len(fh.read())
            files += 1
    return files, total


def main(argv: list[str]) -> int:
    files, total = read_all(argv[0])
    print(json.dumps({"files": files, "bytes": total}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
