"""An aiosmtpd relay for mailgate-notify's delivery tests (run with the rig's venv python).

Modes: plain (no TLS, no STARTTLS offered), starttls (STARTTLS offered and required before
MAIL), tls (implicit TLS on the listening port). With --user/--password, AUTH is required
(after TLS) and --mechanisms limits the AUTH mechanisms offered (e.g. PLAIN or LOGIN).

Every accepted message is stored in --dir as N.eml (the DATA content exactly as received, after
dot-unstuffing) and N.json (envelope, authentication and TLS facts). Recipients whose local part
starts with "perm-" are refused with 550; with "temp-", refused with 451 the first two times
they are tried, then accepted. --pipelining announces PIPELINING. Prints "READY <port>" on stdout once listening; stops on SIGTERM.
"""

import argparse
import asyncio
import itertools
import json
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

MECHANISMS = {"PLAIN", "LOGIN", "CRAM-MD5"}


class Store:
    def __init__(self, directory, implicit_tls, pipelining):
        self.directory = directory
        self.implicit_tls = implicit_tls
        self.pipelining = pipelining
        self.counter = itertools.count(1)
        self.temp_tries = {}
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd reads commands one line at a time, so it serves pipelined groups; it just
        # does not say so. --pipelining adds the keyword before the closing "250 HELP".
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local.startswith("perm-"):
            return "550 5.1.1 <%s>: no such user" % address
        if local.startswith("temp-"):
            with self.lock:
                n = self.temp_tries.get(address, 0) + 1
                self.temp_tries[address] = n
            if n <= 2:
                return "451 4.3.0 <%s>: try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            n = next(self.counter)
        base = os.path.join(self.directory, "%06d" % n)
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "authenticated": bool(session.authenticated),
            "tls": self.implicit_tls or session.ssl is not None,
        }
        with open(base + ".json", "w") as f:
            json.dump(meta, f)
        # The .eml appears last and atomically: a test that sees it sees the whole message.
        os.rename(base + ".tmp", base + ".eml")
        return "250 2.0.0 OK queued as %d" % n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--mechanisms", default="PLAIN,LOGIN")
    p.add_argument("--pipelining", action="store_true", help="announce PIPELINING in EHLO")
    a = p.parse_args()

    kwargs = {}
    ctx = None
    if a.mode in ("starttls", "tls"):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
    if a.mode == "starttls":
        kwargs.update(tls_context=ctx, require_starttls=True)
    if a.user is not None:
        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == a.user
                and auth_data.password.decode() == a.password
            )
            # handled=False: aiosmtpd then sends the 535 itself (handled=True would send nothing).
            return AuthResult(success=ok, handled=False)

        offered = {m.strip().upper() for m in a.mechanisms.split(",") if m.strip()}
        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            # aiosmtpd only counts STARTTLS as TLS; with implicit TLS the socket is encrypted
            # before the first byte, so the requirement is met by construction.
            auth_require_tls=a.mode != "tls",
            auth_exclude_mechanism=sorted(MECHANISMS - offered),
        )
    controller = Controller(
        Store(a.dir, a.mode == "tls", a.pipelining),
        hostname="127.0.0.1",
        port=a.port,
        ssl_context=ctx if a.mode == "tls" else None,
        server_hostname="localhost",
        **kwargs,
    )
    controller.start()
    print("READY %d" % a.port, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    sys.exit(main())
