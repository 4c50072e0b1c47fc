"""`wgns status --json` shows each tunnel's record: what was declared for
it, as stored, with neither key nor password."""

from __future__ import annotations

import json

from wgns.core import state
from wgns.core.config import parse_wgquick
from wgns.core.record import Expose, Forward, Reach, Record

from .conftest import GOOD, PRIV

NAME = "wgnsstatetest"   # no namespace, link or device of that name here


def test_the_record_is_in_the_state_without_secrets():
    record = Record(
        tunnel=parse_wgquick(GOOD, "x.conf", NAME), python="/usr/bin/python3",
        helper="/x/helper.py", confined=("app.service",),
        exposes=(Expose("app.service", 8080, "127.0.0.1:8080"),),
        reaches=(Reach("db.lan:5432", "127.0.0.1:5432"),),
        forward=Forward(qbittorrent="http://127.0.0.1:8080", login=("admin", "s3cret pw")),
        metrics_dir="/srv/metrics")
    got = state.gather(record, None)
    shown = got["record"]
    assert shown["name"] == NAME and shown["confined"] == ["app.service"]
    assert shown["exposes"] == [{"unit": "app.service", "port": 8080,
                                 "listen": "127.0.0.1:8080", "proto": "tcp"}]
    assert shown["reaches"] == [{"target": "db.lan:5432", "at": "127.0.0.1:5432",
                                 "proto": "tcp"}]
    assert shown["forward"]["login"] == {"username": "admin", "password": "(hidden)"}
    assert shown["forward"]["qbittorrent"] == "http://127.0.0.1:8080"
    assert shown["metrics_dir"] == "/srv/metrics"
    text = json.dumps(got)
    assert PRIV not in text and "s3cret" not in text
