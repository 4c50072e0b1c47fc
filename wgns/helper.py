"""What the units run: `PYTHON -I /path/to/wgns/helper.py COMMAND ARGS`:
`netns up|down NAME`, `link up|down NAME`, `watch NAME` (the watch timer),
`probe NAME` (the transient unit of `wgns check`).

The units name this file by its absolute path, and it puts the directory
holding this copy of wgns first on sys.path, so a unit always runs the wgns
that wrote it: a .deb install and a pip install on one machine never mix.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    commands = ("netns", "link", "watch", "probe")
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print("usage: helper.py netns|link up|down NAME | watch NAME | probe NAME",
              file=sys.stderr)
        return 2
    import importlib
    module = {"netns": "netns", "link": "link", "watch": "heal", "probe": "check"}[sys.argv[1]]
    helper = importlib.import_module(f"wgns.{module}")
    main_fn = helper.probe_main if sys.argv[1] == "probe" else helper.main
    return int(main_fn(sys.argv[2:]))


if __name__ == "__main__":
    sys.exit(main())
