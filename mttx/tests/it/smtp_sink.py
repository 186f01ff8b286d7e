"""An SMTP server for the tests (aiosmtpd): it keeps each message it accepts as JSON, parsed
by Python's own email package, in a folder, and can refuse the first messages it gets or
offer STARTTLS.

    smtp_sink.py --port P --out DIR [--fail-first N] [--cert C --key K] [--reject DOMAIN]

`--fail-first N` answers the first N messages with a temporary failure (451) after their
data arrived; `--reject DOMAIN` refuses recipients at DOMAIN for good (550). Prints `ready`
when it listens.
"""

import argparse
import email
import email.policy
import json
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out, fail_first, reject):
        self.out = out
        self.fail_left = fail_first
        self.reject = reject
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject and address.lower().endswith("@" + self.reject):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.fail_left > 0:
            self.fail_left -= 1
            return "451 4.3.0 try again later"
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        plain = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        attachments = [
            {
                "filename": part.get_filename(),
                "content_type": part.get_content_type(),
                "content": part.get_content(),
            }
            for part in message.iter_attachments()
        ]
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "subject": message["subject"],
            "from": message["from"],
            "to": message["to"],
            "message_id": message["message-id"],
            "content_type": message.get_content_type(),
            "plain": plain.get_content() if plain else None,
            "html": html.get_content() if html else None,
            "attachments": attachments,
        }
        self.count += 1
        path = os.path.join(self.out, "%03d.json" % self.count)
        with open(path + ".part", "w") as f:
            json.dump(record, f)
        os.rename(path + ".part", path)
        return "250 OK queued as %d" % self.count


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--reject")
    p.add_argument("--cert")
    p.add_argument("--key")
    a = p.parse_args()
    tls = None
    if a.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(a.cert, a.key)
    controller = Controller(
        Sink(a.out, a.fail_first, a.reject),
        hostname="127.0.0.1",
        port=a.port,
        tls_context=tls,
        require_starttls=False,
    )
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
