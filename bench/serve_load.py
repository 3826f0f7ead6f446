"""Bounded loopback load and abuse test of `tdp serve`; prints a markdown table.

Builds a small GPT-2 (tokenizer trained here, random weights; nothing downloaded), starts
`tdp serve` on 127.0.0.1 in a subprocess (a fresh one per phase, so one phase's leftover work
cannot slow the next), and measures:

- load: a fixed number of scoring requests (the openai backend's own request shape) from a
  few client threads, cut off at a fixed duration: requests/s, p50/p99 latency, RSS before/after;
- hostile requests, one at a time on raw sockets: the status and how long the answer took
  (each is abandoned after `--hostile-timeout` seconds);
- slow-loris: sockets that trickle a header byte a second, plus one that stops mid-body: how
  many the server still holds over time, its thread count, and a normal request meanwhile;
- cancellation: a long request whose client hangs up; the time from the hang-up until its
  work stopped (the server's /health request count, or, for a server that cannot say, the
  next request's answer: it held its lock for all of it) and until a small request gets its
  answer, next to the long request's full (second, warm) duration.

Loopback only; every wait is bounded. From the repository root:

    OMP_NUM_THREADS=1 .venv/bin/python bench/serve_load.py --label after \
        --md bench/results/serve-load.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# --- the model and the server ----------------------------------------------------------
def build_model(out: Path) -> Path:
    """A 6-layer GPT-2 (width 256, context 1024), byte-level BPE trained on stdlib docstrings."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    sys.path.insert(0, str(ROOT))
    from harness.train import stdlib_docstrings, train_tokenizer

    tok = train_tokenizer(stdlib_docstrings(max_bytes=60_000), vocab_size=400)
    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=1024,
        n_embd=256,
        n_layer=6,
        n_head=4,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    GPT2LMHeadModel(cfg).eval().save_pretrained(out)
    tok.save_pretrained(out)
    return out


@dataclass
class Server:
    proc: subprocess.Popen
    host: str
    port: int

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process so far (robust to machine load)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        return _status_field(self.proc.pid, "VmRSS") / 1024

    def hwm_mb(self) -> float:
        return _status_field(self.proc.pid, "VmHWM") / 1024

    def threads(self) -> int:
        return _status_field(self.proc.pid, "Threads")


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(name)


@contextlib.contextmanager
def serving(model_dir: Path, extra: list[str]) -> Iterator[Server]:
    """`tdp serve` in a subprocess on a free loopback port; killed on exit."""
    cmd = [
        str(Path(sys.executable).parent / "tdp"),
        "serve",
        f"hf:{model_dir},dtype=float32,device=cpu,batch_size=4",
        "--port",
        "0",
        "--served-name",
        "bench",
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        for line in proc.stderr:
            m = re.search(r"at http://([\d.]+):(\d+)/v1", line)
            if m:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
        else:
            raise RuntimeError(f"server exited: rc {proc.wait()}")
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        yield Server(proc, m.group(1), int(m.group(2)))
    finally:
        proc.kill()
        proc.wait(timeout=30)


# --- raw HTTP ------------------------------------------------------------------------------
def raw_request(
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict | None = None,
    length: str | None = None,
) -> bytes:
    """Bytes of one HTTP/1.1 request; `length` overrides Content-Length ('' omits it)."""
    hdrs = {"Host": "127.0.0.1", "Content-Type": "application/json", "Connection": "close"}
    hdrs.update(headers or {})
    if length is None:
        length = str(len(body))
    if length != "":
        hdrs["Content-Length"] = length
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    return head.encode() + b"\r\n" + body


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no answer in time
    seconds: float
    body: bytes


def exchange(srv: Server, data: bytes, timeout: float) -> Answer:
    """Send raw bytes, read until the server closes or the timeout; parse the status line."""
    t0 = time.monotonic()
    buf = b""
    with socket.create_connection((srv.host, srv.port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may answer and close before taking the whole body
        s.settimeout(timeout)
        try:
            while time.monotonic() - t0 < timeout:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if _complete(buf):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
    return Answer(
        int(m.group(1)) if m else None, time.monotonic() - t0, buf.partition(b"\r\n\r\n")[2]
    )


def _complete(buf: bytes) -> bool:
    head, sep, body = buf.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)content-length: *(\d+)", head)
    return bool(sep and m and len(body) >= int(m.group(1)))


def post_json(srv: Server, path: str, obj: dict, timeout: float = 60.0) -> Answer:
    return exchange(srv, raw_request("POST", path, json.dumps(obj).encode()), timeout)


def error_shape_ok(ans: Answer) -> bool:
    """OpenAI's error shape: {"error": {"message": str, "type": str, "code": ...}}."""
    try:
        err = json.loads(ans.body)["error"]
        return isinstance(err["message"], str) and bool(err["message"]) and "type" in err
    except (ValueError, KeyError, TypeError):
        return False


# --- phases ----------------------------------------------------------------------------------
def scoring_body(rng: random.Random, vocab: int, prompts: int, length: int) -> dict:
    """The openai backend's scoring request: token-id prompts, echo, one log-prob each."""
    ids = [[0] + [rng.randrange(1, vocab) for _ in range(length - 1)] for _ in range(prompts)]
    return {
        "model": "bench",
        "prompt": ids,
        "echo": True,
        "logprobs": 1,
        "max_tokens": 1,
        "temperature": 0.0,
    }


def load_phase(srv: Server, args: argparse.Namespace, vocab: int) -> dict:
    rng = random.Random(0)
    bodies = [
        json.dumps(scoring_body(rng, vocab, 16, rng.randrange(16, 64))).encode()
        for _ in range(args.requests)
    ]
    for b in bodies[:3]:
        exchange(srv, raw_request("POST", "/v1/completions", b), 60)
    rss0, cpu0 = srv.rss_mb(), srv.cpu_s()
    lat: list[float] = []
    bad = []
    nxt, lock, t_end = iter(bodies), threading.Lock(), time.monotonic() + args.duration

    def worker() -> None:
        while time.monotonic() < t_end:
            with lock:
                body = next(nxt, None)
            if body is None:
                return
            ans = exchange(srv, raw_request("POST", "/v1/completions", body), 60)
            (lat if ans.status == 200 else bad).append(ans.seconds)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    wall = time.monotonic() - t0
    lat.sort()
    return {
        "done": len(lat),
        "failed": len(bad),
        "rps": len(lat) / wall,
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "cpu_ms_per_request": 1000 * (srv.cpu_s() - cpu0) / max(1, len(lat) + len(bad)),
        "rss_before_mb": rss0,
        "rss_after_mb": srv.rss_mb(),
        "wall_s": wall,
    }


def hostile_cases(vocab: int) -> list[tuple[str, Callable[[], bytes]]]:
    """(name, raw request) for each hostile class of issue 14 item 2."""
    text = " ".join(re.findall(r"\w+", Path(json.__file__).read_text()))
    big = (text * (10_000_000 // len(text) + 1))[:10_000_000]
    cmp, detok, tok = "/v1/completions", "/detokenize", "/tokenize"

    def post(path: str, raw: str | bytes, **kw) -> Callable[[], bytes]:
        data = raw.encode() if isinstance(raw, str) else raw
        return lambda: raw_request("POST", path, data, **kw)

    many = json.dumps({"prompt": [[1, 2]] * 100_000, "max_tokens": 1, "temperature": 0})
    return [
        ("100,000 prompts in one request", post(cmp, many)),
        ("10 MB string prompt", post(cmp, json.dumps({"prompt": big, "max_tokens": 1}))),
        ("10 MB string to /tokenize", post(tok, json.dumps({"prompt": big}))),
        ("Content-Length: -1", post(cmp, '{"prompt": [1]}', length="-1")),
        ("Content-Length: abc", post(cmp, '{"prompt": [1]}', length="abc")),
        (
            "no Content-Length (chunked)",
            post(
                cmp,
                b'f\r\n{"prompt": [1]}\r\n0\r\n\r\n',
                length="",
                headers={"Transfer-Encoding": "chunked"},
            ),
        ),
        ("Content-Length: 10^9, no body", post(cmp, b"", length=str(10**9))),
        ("temperature NaN", post(cmp, '{"prompt": [1, 2], "temperature": NaN}')),
        ("temperature Infinity", post(cmp, '{"prompt": [1, 2], "temperature": Infinity}')),
        ("temperature 1e999", post(cmp, '{"prompt": [1, 2], "temperature": 1e999}')),
        ("nested JSON 100k deep", post(cmp, '{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}")),
        ("seed 'x'", post(cmp, '{"prompt": [1, 2], "temperature": 1, "seed": "x"}')),
        ("seed 2^70", post(cmp, f'{{"prompt": [1, 2], "temperature": 1, "seed": {2**70}}}')),
        ("seed 1.5", post(cmp, '{"prompt": [1, 2], "temperature": 1, "seed": 1.5}')),
        ("n true", post(cmp, '{"prompt": [1, 2], "n": true}')),
        ("detokenize tokens ['a']", post(detok, '{"tokens": ["a"]}')),
        ("detokenize tokens [1.5]", post(detok, '{"tokens": [1.5]}')),
        ("detokenize tokens [10^12]", post(detok, '{"tokens": [1000000000000]}')),
        ("detokenize tokens 'abc'", post(detok, '{"tokens": "abc"}')),
        ("body not UTF-8", post(cmp, b'{"prompt": "\xff\xfe"}')),
        ("body a JSON array", post(cmp, "[1, 2]")),
        ("PUT /v1/completions", lambda: raw_request("PUT", cmp, b"{}")),
        ("token ids out of range", post(cmp, json.dumps({"prompt": [1, vocab + 5]}))),
    ]


def hostile_phase(model_dir: Path, args: argparse.Namespace, vocab: int) -> list[dict]:
    rows = []
    for name, build in hostile_cases(vocab):
        # a fresh server for the heavy cases: a stuck one would stall every later row
        heavy = name.startswith(("100,000", "10 MB"))
        with serving(model_dir, args.server_arg) if heavy else contextlib.nullcontext() as own:
            srv = own or args._shared
            ans = exchange(srv, build(), args.hostile_timeout)
            row = {
                "case": name,
                "status": ans.status,
                "seconds": ans.seconds,
                "json_error": error_shape_ok(ans),
            }
            if heavy:
                row["hwm_mb"] = srv.hwm_mb()
        rows.append(row)
        print(f"  {name}: {row}", file=sys.stderr)
    return rows


def slowloris_phase(srv: Server, args: argparse.Namespace) -> dict:
    socks: list[socket.socket] = []
    head = b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    trickle = b"X-Padding: " + b"a" * 10_000
    for _ in range(args.slow_sockets):
        s = socket.create_connection((srv.host, srv.port), timeout=5)
        s.sendall(head)
        socks.append(s)
    partial = socket.create_connection((srv.host, srv.port), timeout=5)
    partial.sendall(raw_request("POST", "/v1/completions", b'{"prompt": [1, 2', length="1000"))
    t0, open_at, closed_at, peak_threads = time.monotonic(), {}, {}, srv.threads()
    normal: Answer | None = None
    alive = set(range(len(socks)))
    partial_closed = None
    step = 0
    while time.monotonic() - t0 < args.hold and (alive or partial_closed is None):
        for i in list(alive):
            try:
                socks[i].sendall(trickle[step : step + 1])
                if _peer_closed(socks[i]):
                    raise ConnectionResetError
            except OSError:
                alive.discard(i)
                closed_at[i] = time.monotonic() - t0
        if partial_closed is None and _peer_closed(partial):
            partial_closed = time.monotonic() - t0
        peak_threads = max(peak_threads, srv.threads())
        if normal is None and time.monotonic() - t0 > 2:
            normal = post_json(
                srv,
                "/v1/completions",
                {"prompt": [1, 2, 3], "max_tokens": 1, "temperature": 0},
                timeout=10,
            )
        open_at[round(time.monotonic() - t0)] = len(alive)
        step += 1
        time.sleep(1.0)
    held = time.monotonic() - t0
    for s in [*socks, partial]:
        s.close()
    return {
        "sockets": args.slow_sockets,
        "peak_threads": peak_threads,
        "open_after_5s": open_at.get(5, len(alive)),
        "open_at_end": len(alive),
        "watched_s": held,
        "last_closed_s": max(closed_at.values()) if closed_at and not alive else None,
        "partial_body_closed_s": partial_closed,
        "normal_status": normal.status if normal else None,
        "normal_ms": 1000 * normal.seconds if normal else None,
    }


def _peer_closed(s: socket.socket) -> bool:
    """True when the server has closed its side (EOF or reset) of an idle socket."""
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        return False
    try:
        return s.recv(65536, socket.MSG_PEEK) == b"" or _drained(s)
    except OSError:
        return True


def _drained(s: socket.socket) -> bool:
    s.recv(65536)  # an error answer before the close: read it, the EOF follows
    return False


def cancel_phase(model_dir: Path, args: argparse.Namespace, vocab: int) -> list[dict]:
    rng = random.Random(1)
    prompt = [0] + [rng.randrange(1, vocab) for _ in range(15)]
    long_requests = {
        "scoring 16 x 1000 tokens, logprobs 20": scoring_body(rng, vocab, 16, 1000)
        | {"logprobs": 20},
        "generation n=16 x 600 tokens": {
            "prompt": prompt,
            "n": 16,
            "max_tokens": 600,
            "temperature": 1.0,
            "seed": 3,
        },
    }
    rows = []
    small = {"prompt": [1, 2, 3], "max_tokens": 1, "temperature": 0}
    for name, body in long_requests.items():
        data = raw_request("POST", "/v1/completions", json.dumps(body).encode())
        with serving(model_dir, args.server_arg) as srv:
            exchange(srv, data, args.hostile_timeout * 4)  # warm-up: the first run is slower
            full = exchange(srv, data, args.hostile_timeout * 4)
            busy_health = None
            s = socket.create_connection((srv.host, srv.port))
            s.sendall(data)
            time.sleep(args.cancel_after)
            busy_health = exchange(srv, raw_request("GET", "/health"), 5)
            s.close()
            t0, answered = time.monotonic(), {}

            def small_request(srv: Server = srv, answered: dict = answered) -> None:
                ans = post_json(srv, "/v1/completions", small, timeout=args.hostile_timeout * 4)
                answered.update(status=ans.status, at=time.monotonic())

            side = threading.Thread(target=small_request)
            side.start()
            stopped = _work_stopped(srv, t0 + args.hostile_timeout * 4)
            side.join()
        rows.append(
            {
                "request": name,
                "full_s": full.seconds,
                "full_status": full.status,
                # a server without a request count in /health held its lock for all the work:
                # the next request's answer is when that work ended
                "stopped_after_s": (stopped or answered["at"]) - t0,
                "stop_measured_by": "/health" if stopped else "next answer",
                "next_answered_after_s": answered["at"] - t0,
                "small_status": answered["status"],
                "health_while_busy": f"{busy_health.status} {busy_health.body.decode()}",
            }
        )
        print(f"  {name}: {rows[-1]}", file=sys.stderr)
    return rows


def _work_stopped(srv: Server, deadline: float) -> float | None:
    """When /health first reports no request in flight (None: it does not report that)."""
    while time.monotonic() < deadline:
        body = exchange(srv, raw_request("GET", "/health"), 5).body
        try:
            requests = json.loads(body).get("requests")
        except ValueError:
            return None
        if requests is None:
            return None
        if requests == 0:
            return time.monotonic()
        time.sleep(0.01)
    return None


# --- report ------------------------------------------------------------------------------
def table(
    label: str,
    load: dict,
    hostile: list[dict],
    slow: dict,
    cancel: list[dict],
    args: argparse.Namespace,
) -> str:
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True, capture_output=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "-uno", "--", "harness"],
        cwd=ROOT,
        text=True,
        capture_output=True,
    ).stdout.strip()
    out = [
        f"### {label} ({time.strftime('%Y-%m-%d')}, git {rev}{' + changes' if dirty else ''}, "
        f"server args {' '.join(args.server_arg) or '(defaults)'})",
        "",
        "| load | value |",
        "|---|---|",
        f"| requests done / failed (of {args.requests}, {args.concurrency} clients, "
        f"cap {args.duration:.0f} s) | {load['done']} / {load['failed']} |",
        f"| requests/s (16 prompts of 16-63 tokens each) | {load['rps']:.1f} |",
        f"| server CPU per request (user + system) | {load['cpu_ms_per_request']:.0f} ms |",
        f"| latency p50 / p99 | {load['p50_ms']:.0f} / {load['p99_ms']:.0f} ms |",
        f"| server RSS before / after | {load['rss_before_mb']:.0f} / "
        f"{load['rss_after_mb']:.0f} MB |",
        "",
        f"| slow-loris ({slow['sockets']} trickling sockets + 1 partial body, watched "
        f"{slow['watched_s']:.0f} s) | value |",
        "|---|---|",
        f"| server threads, peak | {slow['peak_threads']} |",
        f"| trickling sockets still open after 5 s / at the end | {slow['open_after_5s']} / "
        f"{slow['open_at_end']} |",
        f"| last trickling socket closed at | {_s(slow['last_closed_s'], slow['watched_s'])} |",
        f"| partial-body socket closed at | "
        f"{_s(slow['partial_body_closed_s'], slow['watched_s'])} |",
        f"| a normal request meanwhile | {slow['normal_status']} in {_ms(slow['normal_ms'])} |",
        "",
        f"| cancellation (client hangs up after {args.cancel_after} s) | full request | "
        "hang-up to its work stopped | hang-up to the next request answered | "
        "/health while busy |",
        "|---|---|---|---|---|",
    ]
    for r in cancel:
        out.append(
            f"| {r['request']} | {r['full_status']} in {r['full_s']:.1f} s | "
            f"{r['stopped_after_s']:.2f} s (by {r['stop_measured_by']}) | "
            f"{r['next_answered_after_s']:.2f} s | `{r['health_while_busy']}` |"
        )
    out += [
        "",
        f"| hostile request (abandoned after {args.hostile_timeout:.0f} s) | status | "
        "seconds | OpenAI error JSON | peak RSS |",
        "|---|---|---|---|---|",
    ]
    for r in hostile:
        hwm = f"{r['hwm_mb']:.0f} MB" if "hwm_mb" in r else ""
        status = r["status"] if r["status"] is not None else "no answer"
        out.append(
            f"| {r['case']} | {status} | {r['seconds']:.2f} | "
            f"{'yes' if r['json_error'] else 'no'} | {hwm} |"
        )
    return "\n".join(out) + "\n"


def _s(v: float | None, watched: float) -> str:
    return f"{v:.1f} s" if v is not None else f"still held at {watched:.0f} s"


def _ms(v: float | None) -> str:
    return f"{v:.0f} ms" if v is not None else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="run")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--duration", type=float, default=60.0, help="cap of the load phase, s")
    ap.add_argument("--slow-sockets", type=int, default=100)
    ap.add_argument("--hold", type=float, default=40.0, help="how long to watch slow sockets")
    ap.add_argument("--hostile-timeout", type=float, default=30.0)
    ap.add_argument("--cancel-after", type=float, default=2.0)
    ap.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra argument for tdp serve (repeatable)",
    )
    ap.add_argument("--phases", default="load,hostile,slowloris,cancel")
    ap.add_argument("--md", type=Path, help="append the table to this markdown file")
    args = ap.parse_args()
    phases = set(args.phases.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(Path(tmp) / "model")
        from transformers import AutoTokenizer

        vocab = len(AutoTokenizer.from_pretrained(model_dir))
        load, hostile, slow, cancel = {}, [], {}, []
        if "load" in phases or "hostile" in phases:
            with serving(model_dir, args.server_arg) as srv:
                args._shared = srv
                if "load" in phases:
                    load = load_phase(srv, args, vocab)
                    print(f"  load: {load}", file=sys.stderr)
                if "hostile" in phases:
                    hostile = hostile_phase(model_dir, args, vocab)
        if "slowloris" in phases:
            with serving(model_dir, args.server_arg) as srv:
                slow = slowloris_phase(srv, args)
                print(f"  slow-loris: {slow}", file=sys.stderr)
        if "cancel" in phases:
            cancel = cancel_phase(model_dir, args, vocab)
    if phases != {"load", "hostile", "slowloris", "cancel"}:
        print(
            json.dumps({"load": load, "hostile": hostile, "slow": slow, "cancel": cancel}, indent=1)
        )
        return
    md = table(args.label, load, hostile, slow, cancel, args)
    print(md)
    if args.md:
        with args.md.open("a") as f:
            f.write(md + "\n")


if __name__ == "__main__":
    main()
