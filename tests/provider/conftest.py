"""Fixtures of the fake provider's host tests: a namespace standing in for
a guest's root with a pool of three servers in front of it (`pool_net`), a
WireGuard client there (`client`, `mullvad`), and the PIA-like API over
another such pool (`pia_net`). Everything carries this run's pid in its
name and is taken away afterwards, also after a setup that failed half way.
"""

from __future__ import annotations

import pytest

from ..harness import pia as piamod
from ..harness import pool as poolmod
from .net import PID, Root, WgClient, require
from .pia_calls import FIRST, add_key, get_token
from .pia_wgns import Hosts


@pytest.fixture(scope="module")
def pool_net(tmp_path_factory):
    """(root, pool): three servers, up."""
    require()
    root = Root(f"pt{PID}-root")
    pool = poolmod.Pool(3, tag=f"pt{PID}-", root=root.name,
                        state=tmp_path_factory.mktemp("pool"), hosts=None)
    try:
        pool.setup()
        yield root, pool
    finally:
        pool.teardown()
        root.close()


@pytest.fixture
def client(pool_net, tmp_path):
    """A WireGuard link in the root, with no address or peer yet."""
    root, _ = pool_net
    wg = WgClient(root, f"c{PID}", tmp_path)
    try:
        yield wg
    finally:
        wg.close()


@pytest.fixture
def mullvad(pool_net, client):
    """The client with the pool's one Mullvad-style key, on no server yet."""
    _, pool = pool_net
    keys = pool.mullvad_clients()
    client.up(keys[0].priv, ["10.67.0.2/32"], ["10.67.0.0/24", "198.18.0.0/24"])
    return keys


@pytest.fixture(scope="module")
def pia_net(tmp_path_factory):
    """(root, pool, pia): three servers, the third's region without port forwarding."""
    require()
    root = Root(f"pa{PID}-root")
    pool = poolmod.Pool(3, tag=f"pa{PID}-", root=root.name,
                        state=tmp_path_factory.mktemp("pia"), hosts=None)
    pia = piamod.PiaApi(pool, no_port_forward=("swiss",))
    try:
        pool.setup()
        pia.setup()
        yield root, pool, pia
    finally:
        pia.stop()
        pool.teardown()
        root.close()


@pytest.fixture(scope="module")
def named(pia_net):
    """The API's name (PIA's web API is asked by name) resolvable in the
    fake's root namespace, for the module."""
    root, _, pia = pia_net
    hosts = Hosts(root.name, pia.api.public4)
    yield
    hosts.close()


@pytest.fixture
def calm(pia_net):
    """The PIA API behaving at the start and the end of a test."""
    _, _, pia = pia_net
    pia.clear_modes()
    yield
    pia.clear_modes()


@pytest.fixture
def tunnel(pia_net, tmp_path):
    """A client registered with the first server by addKey, its tunnel up:
    (client, the addKey answer, the token, the client's public key)."""
    root, pool, pia = pia_net
    s = pool.server(FIRST)
    token = get_token(root, pia)
    priv, pub = poolmod.genkey()
    answer = add_key(root, pia, s, token, pub)
    assert answer["status"] == "OK", answer
    wg = WgClient(root, f"c{PID}", tmp_path)
    try:
        wg.up(priv, [f"{answer['peer_ip']}/32"],
              [f"{answer['server_vip'].rsplit('.', 1)[0]}.0/24", f"{answer['dns_servers'][0]}/32"])
        wg.use(answer["server_key"], f"{answer['server_ip']}:{answer['server_port']}")
        yield wg, answer, token, pub
    finally:
        wg.close()
