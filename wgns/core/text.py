"""Text on its way out of wgns (messages, the journal, what status shows):
always one printable line, and never a secret. Both sides use it."""

from __future__ import annotations

from typing import Iterable

RUN = 12           # this many consecutive characters of a secret are never shown
SHORT_WHOLE = 6    # a shorter secret is hidden whole from this length on
HIDDEN = "(hidden)"


def one_line(text: str) -> str:
    """Every character that is not printable shown escaped, as Python
    writes it (`\\n`, `\\x1b`, `\\u2028`, `\\udcff`): a line break or a
    terminal escape that came from the network (a client's answer, a
    gateway, a command's output) can neither forge another line of the
    journal nor move the cursor, and a message is always one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def redact(text: str, secrets: Iterable[str]) -> str:
    """TEXT with every run of RUN characters that is also in one of the
    SECRETS (and a secret shorter than that, whole) replaced by HIDDEN: a
    hostile client that echoes the password it was sent cannot get it into
    the journal or status."""
    hide = [False] * len(text)
    for secret in secrets:
        if len(secret) < SHORT_WHOLE:
            continue
        n = min(RUN, len(secret))
        for i in range(len(secret) - n + 1):
            window, start = secret[i:i + n], text.find(secret[i:i + n])
            while start >= 0:
                hide[start:start + n] = [True] * n
                start = text.find(window, start + 1)
    out, i = [], 0
    while i < len(text):
        if hide[i]:
            while i < len(text) and hide[i]:
                i += 1
            out.append(HIDDEN)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
