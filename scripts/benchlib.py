"""Helpers shared by the benchmark scripts: free ports, waiting for a server, the release build."""

import json
import os
import platform
import resource
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXE = ROOT / "target" / "release" / "framegate"
TICKS = os.sysconf("SC_CLK_TCK")


def machine():
    """The machine, for a report: CPU model, architecture, cores, OS."""
    text = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
        return f"{model}; {text}"
    except (OSError, StopIteration):
        return text


def free_port():
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    """Waits until something accepts connections on the port, or exits with a message."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def build_release():
    """Builds framegate in release mode; returns the binary's path. With `FRAMEGATE_EXE` set
    (the short CI run uses the test build), that binary is used and nothing is built."""
    if os.environ.get("FRAMEGATE_EXE"):
        return Path(os.environ["FRAMEGATE_EXE"])
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    return EXE


def api(port, path):
    """GET a JSON document from framegate's API."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.load(r)


def wait_live(port, timeout=30, settle=3):
    """Waits until every stream is live, then `settle` seconds more for the encoders."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(s["state"] == "live" for s in api(port, "/api/streams")):
            break
        time.sleep(0.3)
    time.sleep(settle)


def run_cpu(cmd):
    """Runs a command; returns the CPU seconds (user + system) its processes used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cpu_seconds(pid):
    """CPU seconds (user + system) a process has used so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def nginx(tmp, port):
    """A local nginx-rtmp on `port` (application `live`), its files in `tmp`; listening when
    this returns."""
    conf = tmp / "nginx.conf"
    conf.write_text(
        "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n"
        f"daemon off;\nmaster_process off;\nerror_log {tmp}/error.log;\npid {tmp}/nginx.pid;\n"
        "events { worker_connections 4096; }\n"
        f"rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n"
        "  application live { live on; record off; } } }\n")
    p = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(conf)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def most_that_pass(ok, most):
    """The largest n from 1 to `most` for which `ok(n)` holds (0 if none), assuming it holds up
    to some n and not after: doubling, then bisecting. Also whether `most` itself passed."""
    good, n = 0, 1
    while n <= most and ok(n):
        good, n = n, n * 2
    bad = n if n <= most else None
    while bad is not None and bad - good > 1:
        mid = (good + bad) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good, bad is None
