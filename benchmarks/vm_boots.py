"""Boot the VM tier N times with a short scenario and report how many boots
needed a retry (the emulated kernel panicking, or no report) and how long
each took.

    sudo python3 benchmarks/vm_boots.py [--boots 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness import machine, vm  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--boots", type=int, default=10)
    args = ap.parse_args()
    seconds, retries, failed = [], 0, 0
    for i in range(args.boots):
        try:
            rep = vm.run_scenario("system", "bootcheck")
        except machine.Unavailable as e:
            print(f"cannot run: {e}", file=sys.stderr)
            return 2
        attempts = rep.info.get("vm_attempts", [])
        retries += len(attempts) > 1
        ok = rep.finished and not rep.failed()
        failed += not ok
        seconds += [a["seconds"] for a in attempts]
        print(f"boot {i + 1}: {'ok' if ok else 'FAILED'}, attempts {attempts}", flush=True)
    print(f"{args.boots} runs, {len(seconds)} boots: {retries} needed a retry, {failed} failed; "
          f"boot+scenario median {statistics.median(seconds):.1f} s "
          f"(min {min(seconds):.1f}, max {max(seconds):.1f})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
