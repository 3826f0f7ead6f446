"""Would uvicorn (vLLM's HTTP server) bound slow clients for free? A loopback probe.

Runs a trivial Starlette app under uvicorn (`--limit-concurrency 64`, default
`--timeout-keep-alive 5`) in a subprocess and points bench/serve_load.py's slow-loris phase at
it: 100 sockets trickling a header byte a second, one that stops mid-body, and a normal
request meanwhile. Uvicorn and Starlette are not tdp dependencies; install them anywhere on
PYTHONPATH to run this (e.g. `pip install --target /tmp/asgi uvicorn starlette`):

    PYTHONPATH=/tmp/asgi .venv/bin/python bench/serve_asgi_probe.py [--hold 40]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import Server, slowloris_phase  # noqa: E402

APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def completions(request):
    body = await request.body()
    return JSONResponse({"bytes": len(body)})

async def health(request):
    return JSONResponse({})

app = Starlette(routes=[Route("/v1/completions", completions, methods=["POST"]),
                        Route("/health", health)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), limit_concurrency=64,
            timeout_keep_alive=5, log_level="warning")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hold", type=float, default=40.0)
    ap.add_argument("--slow-sockets", type=int, default=100)
    args = ap.parse_args()
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", APP, str(port)])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        idle = socket.create_connection(("127.0.0.1", port))  # connects, never sends a byte
        res = slowloris_phase(Server(proc, "127.0.0.1", port), args)
        idle.setblocking(False)
        try:
            idle_open = idle.recv(1) != b""
        except BlockingIOError:
            idle_open = True
    finally:
        proc.kill()
        proc.wait(timeout=30)
    print(
        f"### uvicorn {uvicorn.__version__} + Starlette, trivial app "
        f"({time.strftime('%Y-%m-%d')}, limit_concurrency 64, timeout_keep_alive 5)\n"
    )
    print(
        f"| slow-loris ({res['sockets']} trickling sockets + 1 partial body + 1 silent, "
        f"watched {res['watched_s']:.0f} s) | value |\n|---|---|"
    )
    still_open = f"{res['open_after_5s']} / {res['open_at_end']}"
    rows = {
        "trickling sockets still open after 5 s / at the end": still_open,
        "partial-body socket closed at": _s(res["partial_body_closed_s"], res["watched_s"]),
        "silent socket (no byte sent) still open at the end": "yes" if idle_open else "no",
        "a normal request meanwhile": f"{res['normal_status']} in {res['normal_ms']:.0f} ms"
        if res["normal_ms"] is not None
        else "-",
    }
    for k, v in rows.items():
        print(f"| {k} | {v} |")


def _s(v: float | None, watched: float) -> str:
    return f"{v:.1f} s" if v is not None else f"still held at {watched:.0f} s"


if __name__ == "__main__":
    main()
