"""`tdp serve`: an OpenAI-compatible scoring endpoint over a transformers model."""

from __future__ import annotations

import click

from harness.cli.errors import user_errors


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
@user_errors
def serve_cmd(
    model: str, host: str, port: int, served_name: str | None, api_key_env: str | None
) -> None:
    """Serve MODEL (an hf spec such as `hf:./model,dtype=float32`) for black-box audits.

    Clients score with the `openai` backend: `openai:http://HOST:PORT/v1/NAME,tokenizer=...`.
    """
    from harness.backends.hub import preflight_model
    from harness.serve import build_server

    preflight_model(model)

    server = build_server(model, served_name, host, port, api_key_env)
    click.echo(f"serving {server.sm.name!r} at {server.url} (Ctrl-C to stop)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def register(group: click.Group) -> None:
    group.add_command(serve_cmd)
