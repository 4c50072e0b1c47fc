"""Rerunnable benchmark of wgns, inside the container harness.

    sudo python3 benchmarks/run.py [--system debian12] [--flavour pypi] [--runs 10]

Boots a guest (tests/harness/machine.py), runs the `bench` scenario
(tests/harness/bench.py) and prints a Markdown table: medians, spreads and
ratios against a baseline measured in the same run. The raw samples go to
--json FILE when given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness import machine  # noqa: E402


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> str:
    return f"{min(xs) * 1000:.0f}-{max(xs) * 1000:.0f}"


def table(info: dict) -> str:
    out = []
    m = info["machine"]
    v = info["versions"]
    out.append(f"Machine: {m['cpus']} CPUs ({m['cpu']}), kernel {m['kernel']}; guest "
               f"{info['systemd']}, Python {v['python']}, pyroute2 {v['pyroute2']}, "
               f"typer {v['typer']}, pystemd {v['pystemd']}; userspace WireGuard "
               f"(wireguard-go).\n")
    up, down = info["bringup"], info["stop"]
    n = len(up["wgns"])
    out.append(f"| tunnel ({n} runs each, alternating) | wgns median ms (min-max) | "
               "shell baseline median ms (min-max) | wgns / baseline |")
    out.append("|---|---|---|---|")
    for label, d in (("`systemctl start` to first handshake", up),
                     ("`systemctl stop` to namespace gone", down)):
        out.append(f"| {label} | {med(d['wgns']) * 1000:.0f} ({spread(d['wgns'])}) | "
                   f"{med(d['baseline']) * 1000:.0f} ({spread(d['baseline'])}) | "
                   f"{med(d['wgns']) / med(d['baseline']):.2f} |")
    if info.get("bringup_phases"):
        out.append("")
        out.append("| where a wgns bring-up's time goes | median ms |")
        out.append("|---|---|")
        for k, xs in info["bringup_phases"].items():
            out.append(f"| {k.replace('_', ' ')} | {med(xs) * 1000:.0f} |")
        for k, xs in info.get("interpreter_ms", {}).items():
            out.append(f"| `{k}` | {med(xs):.0f} |")
    out.append("")
    out.append("| CLI command | median ms (min-max) | peak RSS MiB | / `wgns --version` |")
    out.append("|---|---|---|---|")
    base = med([s[0] for s in info["cli"].get("--version", [[0.0, 0]])])
    for cmd, samples in info["cli"].items():
        walls = [s[0] for s in samples]
        rss = max(s[1] for s in samples) / 1024
        ratio = f"{med(walls) / base:.2f}" if base else "?"
        out.append(f"| `wgns {cmd}` | {med(walls) * 1000:.0f} ({spread(walls)}) | {rss:.1f} "
                   f"| {ratio} |")
    out.append("")
    out.append("Heaviest imports (cumulative ms): " + ", ".join(
        f"{name} {ms}" for name, ms in info["imports_ms"]))
    out.append("")
    out.append("| units | `wgns confine` s | daemon-reloads | peak RSS MiB | "
               "`systemctl start` all s | running | `wgns unconfine` s |")
    out.append("|---|---|---|---|---|---|---|")
    for n, s in info["scale"].items():
        out.append(f"| {n} | {s['confine_s']:.2f} | {s['reloads']} | "
                   f"{s['confine_kib'] / 1024:.1f} | {s['start_s']:.2f} | {s['running']} | "
                   f"{s['unconfine_s']:.2f} |")
    out.append("")
    out.append("| tunnels side by side | `wgns install` of the last s | all installs s | "
               "wireguard-go RSS total MiB | `wgns status` s | status peak RSS MiB |")
    out.append("|---|---|---|---|---|---|")
    for n, t in info["tunnels"].items():
        if "install_last_s" in t:
            out.append(f"| {n} | {t['install_last_s']:.2f} | {t['total_s']:.1f} | "
                       f"{t['wireguard_go_rss_kib'] / 1024:.0f} | {t['status_s']:.2f} | "
                       f"{t['status_kib'] / 1024:.1f} |")
    out.append("")
    out.append("| tunnels watched (an idle minute) | watcher CPU s per tunnel-hour | "
               "watcher PSS MiB | watcher RSS MiB | wgns processes | metrics files written |")
    out.append("|---|---|---|---|---|---|")
    for n, t in info["tunnels"].items():
        if "watcher_cpu_s_per_tunnel_hour" in t:
            cpu = t["watcher_cpu_s_per_tunnel_hour"]
            out.append(f"| {n} | {'?' if cpu is None else f'{cpu:.2f}'} | "
                       f"{t['watcher_pss_kib_total'] / 1024:.1f} | "
                       f"{t['watcher_rss_kib_total'] / 1024:.1f} | {t['helper_processes']} | "
                       f"{'yes' if t['metrics_dir'] else 'no'} |")
    out.append("")
    tp = info["throughput_mb_s"]
    out.append(f"| data path ({len(tp['confined'])} runs of 64 MiB each) | median MB/s "
               "(min-max) |")
    out.append("|---|---|")
    for k, label in (("confined", "confined unit (DynamicUser, drop-in)"),
                     ("netns_exec", "`ip netns exec` in the same namespace")):
        out.append(f"| {label} | {med(tp[k]):.0f} ({min(tp[k]):.0f}-{max(tp[k]):.0f}) |")
    ratio = med(tp["confined"]) / med(tp["netns_exec"])
    out.append(f"| ratio confined / ip netns exec | {ratio:.3f} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--system", default="debian12", choices=sorted(machine.SYSTEMS))
    ap.add_argument("--flavour", default="pypi", choices=["pypi", "system", "deb"])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json", metavar="FILE", help="write the raw samples here")
    args = ap.parse_args()
    try:
        report = machine.run_scenario(args.system, args.flavour, "bench",
                                      env={"WGNS_BENCH_RUNS": str(args.runs)})
    except machine.Unavailable as e:
        print(f"cannot run: {e}", file=sys.stderr)
        return 2
    if not report.finished or report.failed():
        print(machine.format_report(report), file=sys.stderr)
        print(str(report.info.get("log", ""))[-5000:], file=sys.stderr)
        return 1
    if args.json:
        Path(args.json).write_text(json.dumps(report.info, indent=1))
    print(table(report.info))
    print(f"\n(guest run {report.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
