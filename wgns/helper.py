"""What the units run: `PYTHON -I /path/to/wgns/helper.py COMMAND ARGS`.

    netns up|down NAME   netns@NAME.service: bind or unbind the namespace
    link up|down NAME    NAME.service: bring the tunnel up or down
    watch                wgns-watch.service: heal every tunnel, keep the metrics
                         (runtime/watcher.py, heal.py); `watch NAME` one tunnel
                         (the per-tunnel unit of wgns 0.1, until it is replaced)
    forward NAME         wgns-NAME-forward.service: port forwarding (NAT-PMP or static)
    relay NAME HOST PORT the UDP relay of `wgns expose --udp` and `wgns reach --udp`
    probe NAME           the transient unit of `wgns check` (runtime/probe.py)
    register NAME        a tunnel made through PIA: register a new key now and
                         restart the tunnel on it (runtime/rereg.py; the watcher
                         does it by itself when the key is refused)

The units name this file by its absolute path, and it puts the directory
holding this copy of wgns first on sys.path, so a unit always runs the wgns
that wrote it: a .deb install and a pip install on one machine never mix.
Every failure is one line on stderr (the journal) and exit status 1.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

USAGE = ("usage: helper.py netns|link up|down NAME | watch [NAME] | forward|probe NAME"
         " | relay NAME HOST PORT | register NAME")


def run(command: str, action: str, name: str | None, rest: list[str]) -> None:
    if command == "watch":
        from wgns.runtime import watcher
        watcher.run(name)
        return
    assert name is not None
    if command == "relay":
        from wgns.runtime import relay
        relay.main(name, *rest)
    elif command == "netns":
        from wgns.runtime import netns_unit
        (netns_unit.up if action == "up" else netns_unit.down)(name)
    elif command == "link":
        from wgns.runtime import link
        if action == "up":
            print(link.up(name), flush=True)
            link.restore_confined(name)
        else:
            link.stop(name)
    elif command == "forward":
        from wgns.runtime import forward_unit
        forward_unit.main(name)
    elif command == "register":
        from wgns.runtime import rereg
        print(rereg.now(name), flush=True)
    else:
        import json

        from wgns.runtime import probe
        print(json.dumps(probe.probe(name)))


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    rest: list[str] = []
    name: str | None
    if command == "relay" and len(args) == 3:
        action, name, rest = command, args[0], args[1:]
    elif command in ("netns", "link") and len(args) == 2 and args[0] in ("up", "down"):
        action, name = args
    elif command in ("watch", "forward", "probe", "register") and len(args) == 1:
        action, name = command, args[0]
    elif command == "watch" and not args:
        action, name = command, None
    else:
        print(USAGE, file=sys.stderr)
        return 2
    from wgns.core.errors import WgnsError
    from wgns.core.names import check_tunnel_name as check_name  # light: no config parser
    from wgns.core.text import one_line
    what = f"wgns: {name} {command} {action}" if command in ("netns", "link") else \
        f"wgns: {name or 'every tunnel'} {command}"
    try:
        if name is not None:
            check_name(name)
        run(command, action, name, rest)
    except WgnsError as e:
        print(one_line(f"{what}: {e}"), file=sys.stderr)
        return 1
    except OSError as e:
        print(one_line(f"{what}: {e.strerror or e}"), file=sys.stderr)
        return 1
    except Exception as e:  # pyroute2's NetlinkError, without importing pyroute2 first
        netlink = sys.modules.get("pyroute2.netlink.exceptions")
        if netlink is None or not isinstance(e, netlink.NetlinkError):
            raise
        print(f"{what}: netlink: {os.strerror(e.code)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
