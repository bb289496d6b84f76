"""digest serve: the subscribers' web front (archive, sign-up, unsubscribe)."""

from __future__ import annotations

import click

from digest.cli.app import STATE, app, err


@app.command(
    epilog="Example: DIGEST_SECRET=... digest serve --host 127.0.0.1 --port 8080 "
    "(then put nginx or Caddy in front for TLS: see docs/web.md)"
)
@click.option("--host", default=None, help="Address to listen on (default: [web] host).")
@click.option("--port", type=int, default=None, help="Port to listen on (default: [web] port).")
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    help="Proxies trusted for X-Forwarded-For/-Proto (comma-separated, '*' for any).",
)
def serve(host: str | None, port: int | None, forwarded_allow_ips: str) -> None:
    """Serve the archive, sign-up, one-click unsubscribe and preferences pages."""
    import uvicorn

    from digest.infra.memory import limit_malloc_arenas
    from digest.store import open_store
    from digest.web import create_app

    # Like the daemon, a long-running process whose handlers run on pool threads (see memory.py).
    limit_malloc_arenas()
    settings = STATE.settings()
    store = open_store(settings.storage.url)
    web_app = create_app(settings, store)
    host = host or settings.web.host
    port = port or settings.web.port
    err.print(f"serving on http://{host}:{port} (Ctrl-C to stop)", markup=False)
    try:
        uvicorn.run(
            web_app,
            host=host,
            port=port,
            # The per-IP sign-up limit needs the real client address from the proxy.
            proxy_headers=True,
            forwarded_allow_ips=forwarded_allow_ips,
            server_header=False,
            log_config=None,  # keep digest's own logging setup (text or JSON)
            access_log=STATE.verbose > 0,
        )
    finally:
        store.close()
