"""A local SMTP sink for the send benchmarks: aiosmtpd in its own process, one line per message.

    python benchmarks/smtp_sink.py --port 2525 --record received.tsv [--hold 0.04] [--stamp]

Each accepted message appends ``<recipient>\\t<Message-ID>\\n`` to the record file (flushed per
message, so whatever happens to the sender the file tells who got what). Advertises PIPELINING.
``--hold`` keeps each message that many seconds before the 250 (a slow relay: it is the limit,
not the CPU; connections are held in parallel); ``--stamp`` adds ``\\t<unix time>`` per line.
Prints ``ready`` on stdout once listening; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from typing import Any, TextIO

from aiosmtpd.smtp import SMTP


class Recorder:
    def __init__(self, out: TextIO | None, hold: float = 0.0, stamp: bool = False) -> None:
        self.out = out
        self.count = 0
        self.hold = hold
        self.stamp = stamp

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        # aiosmtpd reads commands one by one from its stream, so pipelined commands work;
        # saying so lets clients (digest included) use RFC 2920 as with a real relay.
        session.host_name = hostname
        responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.hold:
            await asyncio.sleep(self.hold)
        data: bytes = envelope.content
        start = data.find(b"\r\nMessage-ID: ")
        mid = b"-"
        if start >= 0:
            end = data.find(b"\r\n", start + 2)
            mid = data[start + 14 : end]
        self.count += 1
        if self.out is not None:
            tail = f"\t{time.time():.3f}" if self.stamp else ""
            for rcpt in envelope.rcpt_tos:
                self.out.write(f"{rcpt}\t{mid.decode('ascii', 'replace')}{tail}\n")
            self.out.flush()
        return "250 2.0.0 OK"


async def serve(port: int, record: str | None, hold: float = 0.0, stamp: bool = False) -> int:
    out = open(record, "a", encoding="utf-8") if record else None  # noqa: SIM115
    handler = Recorder(out, hold, stamp)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, enable_SMTPUTF8=True, hostname="sink.local"), "127.0.0.1", port
    )
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    print("ready", flush=True)
    await done.wait()
    server.close()
    if out is not None:
        out.close()
    print(f"received {handler.count}", flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--record", help="append '<rcpt>\\t<message-id>' per message to this file")
    p.add_argument("--hold", type=float, default=0.0, help="seconds to hold each message")
    p.add_argument("--stamp", action="store_true", help="add the arrival time to each line")
    args = p.parse_args()
    return asyncio.run(serve(args.port, args.record, args.hold, args.stamp))


if __name__ == "__main__":
    sys.exit(main())
