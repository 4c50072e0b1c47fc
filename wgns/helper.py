"""What the units run: `PYTHON -I /path/to/wgns/helper.py netns|link up|down NAME`.

The units name this file by its absolute path, and it puts the directory
holding this copy of wgns first on sys.path, so a unit always runs the wgns
that wrote it: a .deb install and a pip install on one machine never mix.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("netns", "link"):
        print("usage: helper.py netns|link up|down NAME", file=sys.stderr)
        return 2
    if sys.argv[1] == "netns":
        from wgns import netns as helper
    else:
        from wgns import link as helper  # type: ignore[no-redef]
    return helper.main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
