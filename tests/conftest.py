import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(REPO))
# A minimal valid wg-quick file (keys generated for these tests only).
PRIV = "kOE8djlEXW0ULFbMoyqfOVxKwgRjn2lZr4t6S7khzF8="
PUB = "Pt7r+VTb1O41rnoK2YlztUwTcjDRUCucx3VVwHf5hmU="
GOOD = f"""[Interface]
PrivateKey = {PRIV}
Address = 10.0.0.2/32
DNS = 10.0.0.1

[Peer]
PublicKey = {PUB}
AllowedIPs = 0.0.0.0/0
Endpoint = vpn.example.net:51820
"""


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc/systemd/system").mkdir(parents=True)
    (r / "etc/systemd/system/app.service").write_text("[Service]\nExecStart=/bin/true\n")
    return r


def one_error(r, code=1) -> str:
    """A CLI result that is exactly one error line, no traceback: the line."""
    assert r.exit_code == code, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wgns: error: "), r.output
    return lines[0]
