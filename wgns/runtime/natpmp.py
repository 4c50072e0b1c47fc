"""NAT-PMP (RFC 6886), the client side: the packets, the answers, the
clock. Pure: no sockets here (forwarder.py sends and receives).

A provider's gateway (ProtonVPN's 10.2.0.1, for one) maps a random external
port to the tunnel address for a lifetime it grants; the client renews
before it runs out and notices from the gateway's epoch when the gateway
lost its state (a restart), which means mapping again at once.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from ..core.errors import WgnsError

PORT = 5351
VERSION = 0
OP_ADDRESS, OP_UDP, OP_TCP = 0, 1, 2
PROTOCOLS = {"udp": OP_UDP, "tcp": OP_TCP}
LIFETIME = 60          # seconds asked for; renewed every 45 s (or half the grant)
RENEW_AT_MOST = 45
# RFC 6886 3.1: the first try waits 250 ms, each next one twice as long, 9 tries.
FIRST_TIMEOUT, TRIES = 0.25, 9

RESULTS = {
    1: "unsupported version",
    2: "not authorized (port forwarding refused: is the key or server made for it? "
       "ProtonVPN: a P2P server and a WireGuard key generated with NAT-PMP enabled)",
    3: "network failure (the gateway has no external address yet)",
    4: "out of resources (the gateway has no port left to give)",
    5: "unsupported opcode",
}


class GatewayError(WgnsError):
    """The gateway answered with a result code other than success."""

    def __init__(self, gateway: str, code: int) -> None:
        self.code = code
        why = RESULTS.get(code, "unknown result code")
        super().__init__(f"gateway {gateway} refused: result {code}, {why}")


class NoMapping(WgnsError):
    """A success that maps nothing: external port 0 or a lifetime of 0."""


class BadReply(ValueError):
    """Not an answer to what was asked: ignored, as the RFC says."""


@dataclass(frozen=True)
class Mapping:
    protocol: str    # "udp" or "tcp"
    epoch: int       # the gateway's seconds since its start
    internal: int
    external: int
    lifetime: int    # granted, seconds


def address_request() -> bytes:
    return struct.pack("!BB", VERSION, OP_ADDRESS)


def map_request(protocol: str, internal: int, external: int = 0,
                lifetime: int = LIFETIME) -> bytes:
    """Ask for (or, with lifetime 0, drop) a mapping. The internal port must
    not be 0: with lifetime 0 that would mean every mapping of this host."""
    if not 1 <= internal <= 65535 or not 0 <= external <= 65535:
        raise ValueError("port out of range")
    if not 0 <= lifetime < 2 ** 32:
        raise ValueError("lifetime out of range")
    return struct.pack("!BBHHHI", VERSION, PROTOCOLS[protocol], 0, internal, external,
                       lifetime)


def _header(data: bytes, opcode: int, length: int, gateway: str) -> tuple[int, int]:
    if len(data) < 8:
        raise BadReply("short reply")
    version, op, result, epoch = struct.unpack("!BBHI", data[:8])
    if op != 128 + opcode:
        raise BadReply(f"reply to opcode {op - 128}, not {opcode}")
    if version != VERSION and result != 1:
        raise BadReply(f"version {version}")
    if result != 0:
        raise GatewayError(gateway, result)
    if len(data) < length:
        raise BadReply("short reply")
    return result, epoch


def parse_address(data: bytes, gateway: str) -> tuple[int, str]:
    """(epoch, the gateway's external IPv4 address)."""
    _, epoch = _header(data, OP_ADDRESS, 12, gateway)
    return epoch, str(ipaddress.IPv4Address(data[8:12]))


def parse_map(data: bytes, protocol: str, gateway: str, internal: int,
              deleting: bool = False) -> Mapping:
    """The answer to a request for INTERNAL (the port asked for, which is
    what the Mapping carries: the reply's own internal port is only
    compared, never used); with DELETING, the answer to a lifetime-0
    request (which maps nothing, as it should). A reply about another
    internal port answers another request (a late reply to an earlier try)
    and is ignored; 0 is taken as "this one", as some gateways answer."""
    _, epoch = _header(data, PROTOCOLS[protocol], 16, gateway)
    answered, external, lifetime = struct.unpack("!HHI", data[8:16])
    if answered not in (internal, 0):
        raise BadReply(f"reply about internal port {answered}, not {internal}")
    if not deleting and (external == 0 or lifetime == 0):
        raise NoMapping(f"gateway {gateway} answered success for {protocol.upper()} but "
                        f"mapped nothing (port {external}, lifetime {lifetime} s)")
    return Mapping(protocol, epoch, internal, external, lifetime)


def renew_after(granted: int) -> float:
    """Seconds until the next renewal: 45 s for the 60 s asked for (or
    more), half of a shorter grant, never less than a second."""
    if granted >= LIFETIME:
        return float(RENEW_AT_MOST)
    return max(1.0, granted / 2)


def retry_timeouts() -> list[float]:
    return [FIRST_TIMEOUT * 2 ** i for i in range(TRIES)]


class Epoch:
    """RFC 6886 3.6: the gateway's clock must run at least 7/8 as fast as
    ours (less 2 s of slack); if it went back, the gateway lost every
    mapping it had and everything must be mapped again."""

    def __init__(self) -> None:
        self.seen: tuple[int, float] | None = None   # (gateway epoch, our time)

    def reset(self, epoch: int, now: float) -> bool:
        """Record an answer's epoch; True when the gateway restarted since
        the last one."""
        lost = False
        if self.seen is not None:
            before, then = self.seen
            elapsed = now - then
            lost = epoch + 2 < before + elapsed * 7 / 8
        self.seen = (epoch, now)
        return lost
