"""Load test of ``crackseg serve``: many concurrent uploads over loopback, nothing refused or lost.

    python benchmarks/load_serve.py                      # 200 requests, 8 at a time, shipped CarNet
    python benchmarks/load_serve.py --requests 20 --concurrency 4 --checkpoint tiny.safetensors \\
        --out /tmp/load.json
    python benchmarks/load_serve.py --url http://127.0.0.1:8000   # a server that runs already

1. Starts ``crackseg serve`` in a child process on a free loopback port (``--queue`` set to the
   concurrency, so every request fits in the line and none is turned away by design) and waits
   for ``/healthz`` (with ``--url``, uses that server as it is instead).
2. Sends ``--requests`` POST /predict uploads of one synthetic JPEG (``crackseg.data.synth``,
   ``--size`` pixels), ``--concurrency`` in flight at any time, and checks every answer: a 200
   whose mask decodes to the photo's size. A request that gets no answer (connection error,
   timeout, cut body) is *lost*.
3. Writes latency percentiles (p50 / p95 / max, seconds, client side), throughput (requests per
   second over the whole run), the status counts, the server's own timings and the machine to
   ``benchmarks/results/serve_load.json`` (or ``--out``), and exits 1 when any answer was a 5xx or
   any request was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

from crackseg.data.synth import generate
from crackseg.models.summary import machine_info

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "serve_load.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, args: list[str], log: Path) -> subprocess.Popen:
    """``crackseg serve`` on 127.0.0.1:port in a child process, its output to ``log``."""
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    cmd = [sys.executable, "-m", "crackseg", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--log-level", "warning", *args]
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)


def wait_ready(url: str, proc: subprocess.Popen | None, log: Path, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
        try:
            r = httpx.get(url + "/healthz", timeout=2)
            if r.status_code == 200 and r.json().get("ready"):
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server did not become ready in {timeout:.0f} s")


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile by linear interpolation between order statistics."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


async def fire(
    url: str, photo: bytes, size: tuple[int, int], n: int, concurrency: int, timeout: float
) -> tuple[list[dict], float]:
    """``n`` uploads, ``concurrency`` at a time; one record per request, and the wall time."""
    records: list[dict] = []
    todo = iter(range(n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        for i in todo:
            t0 = time.perf_counter()
            rec: dict = {"i": i}
            try:
                r = await client.post(
                    url + "/predict",
                    files={"image": ("load.jpg", photo, "image/jpeg")},
                    data={"mm_per_px": "0.5"},
                )
                rec["status"] = r.status_code
                if r.status_code == 200:
                    body = r.json()
                    mask = Image.open(io.BytesIO(base64.b64decode(body["mask_png"])))
                    rec["complete"] = mask.size == (size[1], size[0])
                    rec["server_s"] = body["seconds"]
                    rec["cracks"] = len(body["cracks"])
                else:
                    rec["error"] = r.text[:300]
            except (httpx.HTTPError, ValueError, OSError) as e:  # no (usable) answer: lost
                rec["status"] = None
                rec["error"] = f"{type(e).__name__}: {e}"[:300]
            rec["latency_s"] = time.perf_counter() - t0
            records.append(rec)

    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return sorted(records, key=lambda r: r["i"]), time.perf_counter() - t0


def summarise(records: list[dict], wall: float, n: int) -> dict:
    ok = [r for r in records if r["status"] == 200 and r.get("complete")]
    lat = [r["latency_s"] for r in ok]
    counts: dict[str, int] = {}
    for r in records:
        key = str(r["status"]) if r["status"] is not None else "lost"
        counts[key] = counts.get(key, 0) + 1
    five = sum(1 for r in records if r["status"] is not None and r["status"] >= 500)
    lost = n - len(records) + counts.get("lost", 0)
    incomplete = sum(1 for r in records if r["status"] == 200 and not r.get("complete"))
    server = [r["server_s"] for r in ok]
    return {
        "requests": n,
        "ok": len(ok),
        "status_counts": counts,
        "five_xx": five,
        "lost": lost,
        "incomplete_200": incomplete,
        "wall_s": round(wall, 3),
        "throughput_rps": round(len(ok) / wall, 3) if wall > 0 else None,
        "latency_s": {
            "p50": round(percentile(lat, 0.50), 4),
            "p95": round(percentile(lat, 0.95), 4),
            "max": round(max(lat), 4) if lat else None,
            "mean": round(statistics.fmean(lat), 4) if lat else None,
        },
        "server_predict_s_p50": round(percentile([s["predict"] for s in server], 0.5), 4),
        "errors": [r for r in records if r["status"] != 200][:5],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--size", type=int, nargs=2, default=[512, 512], metavar=("H", "W"))
    ap.add_argument("--threads", type=int, default=2, help="the server's torch threads")
    ap.add_argument("--checkpoint", help="serve this checkpoint instead of the shipped CarNet")
    ap.add_argument("--timeout", type=float, default=600.0, help="client timeout per request, s")
    ap.add_argument("--url", help="load this running server instead of starting one")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        ap.error("--requests and --concurrency must be >= 1")

    size = tuple(args.size)
    buf = io.BytesIO()
    Image.fromarray(generate(7, size, "sunny")[0]).save(buf, "JPEG", quality=90)
    photo = buf.getvalue()
    server_args = ["--queue", str(args.concurrency), "--threads", str(args.threads)]
    server_args += ["--timeout", str(args.timeout)]
    if args.checkpoint:
        server_args += ["--checkpoint", args.checkpoint]
    log = args.out.with_suffix(".server.log")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    proc = None
    if args.url:
        url, server_args = args.url.rstrip("/"), ["(already running)"]
    else:
        url = f"http://127.0.0.1:{free_port()}"
        proc = start_server(int(url.rsplit(":", 1)[1]), server_args, log)
    try:
        health = wait_ready(url, proc, log)
        records, wall = asyncio.run(
            fire(url, photo, size, args.requests, args.concurrency, args.timeout)
        )
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    summary = summarise(records, wall, args.requests)
    passed = summary["five_xx"] == 0 and summary["lost"] == 0 and summary["incomplete_200"] == 0
    record = {
        "passed": passed,
        "command": " ".join(["python benchmarks/load_serve.py", *(argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "setup": {
            "requests": args.requests,
            "concurrency": args.concurrency,
            "image": f"{size[0]}x{size[1]} synthetic JPEG ({len(photo):,} bytes), mm_per_px 0.5",
            "server": url if args.url else "crackseg serve, started by this script",
            "server_args": server_args,
            "transport": "HTTP/1.1 over loopback, client and server on the same machine",
            "model": health["model"],
            "threshold": health["threshold"],
        },
        **summary,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": machine_info(),
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if passed:
        log.unlink(missing_ok=True)
    lat = summary["latency_s"]
    print(
        f"{summary['ok']}/{args.requests} ok, {summary['five_xx']} 5xx, {summary['lost']} lost; "
        f"p50 {lat['p50']:.3f} s, p95 {lat['p95']:.3f} s, {summary['throughput_rps']} req/s "
        f"({args.concurrency} concurrent) -> {args.out}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
