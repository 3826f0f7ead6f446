"""`tdp serve`: an OpenAI-compatible scoring endpoint over a transformers model."""

from __future__ import annotations

import click

from harness.cli.errors import user_errors

_LIMIT = dict(show_default=True)


@click.command("serve")
@click.argument("model")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind; loopback by default."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port (0 picks a free one).",
)
@click.option(
    "--served-name", default=None, help="Name clients use (default: the path or hub id in MODEL)."
)
@click.option(
    "--api-key-env",
    default=None,
    metavar="NAME",
    help="Require `Authorization: Bearer <key>` with the key read from this environment variable.",
)
@click.option(
    "--max-body-mb",
    type=click.FloatRange(min=0.001),
    default=16.0,
    **_LIMIT,
    help="Largest request body, MiB (413 beyond).",
)
@click.option(
    "--max-prompts",
    type=click.IntRange(min=1),
    default=256,
    **_LIMIT,
    help="Most prompts in one request.",
)
@click.option(
    "--max-request-tokens",
    type=click.IntRange(min=0),
    default=0,
    **_LIMIT,
    help="Most tokens in one request (prompts plus n x max_tokens); 0: 16 x the model's context.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=128,
    **_LIMIT,
    help="Open connections (one thread each); beyond that 503 with Retry-After.",
)
@click.option(
    "--max-queue",
    type=click.IntRange(min=1),
    default=16,
    **_LIMIT,
    help="POST requests in flight, running or waiting for the model; beyond that 503.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0.001),
    default=10.0,
    **_LIMIT,
    help="Seconds for a request's headers to arrive (also the keep-alive idle time).",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0.001),
    default=30.0,
    **_LIMIT,
    help="Most seconds for a request's body to arrive after its headers: 5 s plus 1 s per "
    "32 KiB declared, up to this (408 beyond).",
)
@user_errors
def serve_cmd(
    model: str,
    host: str,
    port: int,
    served_name: str | None,
    api_key_env: str | None,
    max_body_mb: float,
    max_prompts: int,
    max_request_tokens: int,
    max_connections: int,
    max_queue: int,
    header_timeout: float,
    body_timeout: float,
) -> None:
    """Serve MODEL (an hf spec such as `hf:./model,dtype=float32`) for black-box audits.

    Clients score with the `openai` backend: `openai:http://HOST:PORT/v1/NAME,tokenizer=...`.
    Slow, oversized or abandoned requests are bounded by the limits below; `GET /health`
    reports whether the model is busy.
    """
    from harness.backends.hub import preflight_model
    from harness.serve.limits import ServeLimits
    from harness.serve.server import build_server

    preflight_model(model)
    limits = ServeLimits(
        max_body_bytes=int(max_body_mb * (1 << 20)),
        max_prompts=max_prompts,
        max_request_tokens=max_request_tokens,
        max_connections=max_connections,
        max_queue=max_queue,
        header_timeout_s=header_timeout,
        body_timeout_s=body_timeout,
    )
    server = build_server(model, served_name, host, port, api_key_env, limits)
    click.echo(f"serving {server.sm.name!r} at {server.url} (Ctrl-C to stop)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def register(group: click.Group) -> None:
    group.add_command(serve_cmd)
