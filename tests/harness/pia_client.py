"""Guest side: a minimal HTTPS client for the fake PIA API, as PIA's
scripts call it (curl --connect-to NAME::ADDRESS: --cacert CA): a TCP
connection to ADDRESS, TLS verified against CA alone for NAME. Prints one
JSON object: status, headers, body, seconds; or {"tls": "refused", "error"}
when the certificate is refused, or {"error"} when nothing answers.
Stdlib only; run it where the client is (a namespace).

    python3 pia_client.py ADDRESS PORT NAME CA GET|POST PATH [BODY [TYPE]]
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
import time


def request(ip: str, port: int, host: str, ca: str, method: str, path: str, body: str = "",
            ctype: str = "application/x-www-form-urlencoded", timeout: float = 10) -> dict:
    ctx = ssl.create_default_context(cafile=ca)
    t = time.monotonic()
    try:
        raw = socket.create_connection((ip, port), timeout)
    except OSError as e:
        return {"error": str(e)}
    try:
        s = ctx.wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError as e:
        raw.close()
        return {"tls": "refused", "error": str(e.verify_message)}
    except (ssl.SSLError, OSError) as e:
        raw.close()
        return {"error": str(e)}
    with s:
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
        data = body.encode() if method == "POST" else b""
        if method == "POST":
            head += f"Content-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
        try:
            s.sendall((head + "\r\n").encode() + data)
            answer = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except OSError as e:  # socket.timeout included
            return {"error": str(e)}
    top, _, payload = answer.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = dict((k.lower(), v) for k, _, v in (ln.partition(": ") for ln in lines[1:]))
    return {"status": int(lines[0].split()[1]), "headers": headers,
            "body": payload.decode("latin-1"), "seconds": time.monotonic() - t}


def main(argv: list[str]) -> int:
    ip, port, host, ca, method, path = argv[:6]
    body, ctype = (argv[6:] + ["", "application/x-www-form-urlencoded"])[:2]
    print(json.dumps(request(ip, int(port), host, ca, method, path, body, ctype)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
