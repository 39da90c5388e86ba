"""bin/up's process supervision (bin/lib/supervise.sh): one process that dies is started again
with a back-off while the others keep answering; Ctrl-C or SIGTERM stops them all.

Driven with two tiny HTTP servers that answer with their pid, in place of gunicorn and the
Celery workers; bin/up runs its real processes through the same `supervise`.
"""

import contextlib
import os
import re
import signal
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER = textwrap.dedent("""
    import http.server, os, sys
    class Pid(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = str(os.getpid()).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Pid).serve_forever()
""")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pid_at(port: int) -> int | None:
    """The pid of the server answering on port, None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return int(response.read())
    except OSError:
        return None


def _wait_for(what: str, condition, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def supervised(tmp_path):
    """(supervisor process, {name: port}, stderr log) of `supervise web worker`."""
    (tmp_path / "server.py").write_text(SERVER)
    ports = {"web": _free_port(), "worker": _free_port()}
    script = tmp_path / "up.sh"
    script.write_text(textwrap.dedent(f"""\
        set -euo pipefail
        . {ROOT / "bin" / "lib" / "supervise.sh"}
        run_web() {{ exec python3 {tmp_path / "server.py"} {ports["web"]}; }}
        run_worker() {{ exec python3 {tmp_path / "server.py"} {ports["worker"]}; }}
        supervise web worker
    """))
    log = tmp_path / "supervise.log"
    proc = subprocess.Popen(["bash", str(script)], stderr=log.open("w"),
                            stdout=subprocess.DEVNULL, start_new_session=True)
    for port in ports.values():
        _wait_for("the servers to answer", lambda port=port: _pid_at(port))
    yield proc, ports, log
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_a_killed_process_is_started_again_while_the_others_keep_answering(supervised):
    proc, ports, log = supervised
    web, worker = _pid_at(ports["web"]), _pid_at(ports["worker"])
    os.kill(worker, signal.SIGKILL)
    _wait_for("the worker to be gone", lambda: _pid_at(ports["worker"]) != worker)

    answers = []  # the web server, asked until the worker is back
    while (back := _pid_at(ports["worker"])) in (None, worker):
        answers.append(_pid_at(ports["web"]))
        assert proc.poll() is None, log.read_text()
        time.sleep(0.05)
    assert answers and set(answers) == {web}  # the same process, never down
    assert back != worker
    assert f"worker (pid {worker}) exited with status 137" in log.read_text()
    assert "starting it again in 1s, the others keep running" in log.read_text()
    assert f"worker started again (pid {back})" in log.read_text()


def test_a_process_that_keeps_dying_waits_longer_each_time(supervised):
    proc, ports, log = supervised
    for _ in range(3):
        pid = _pid_at(ports["worker"])
        os.kill(pid, signal.SIGKILL)
        _wait_for("the worker back", lambda pid=pid: _pid_at(ports["worker"]) not in (None, pid))
    delays = re.findall(r"worker \(pid \d+\) exited .* again in (\d+)s", log.read_text())
    assert delays == ["1", "2", "4"]
    assert proc.poll() is None


def test_sigterm_stops_every_process(supervised):
    proc, ports, log = supervised
    pids = [_pid_at(port) for port in ports.values()]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "supervise: stopping web worker" in log.read_text()


def test_bin_up_supervises_each_process_it_defines():
    up = (ROOT / "bin" / "up").read_text()
    supervised = re.search(r"^supervise (.+)$", up, re.MULTILINE).group(1).split()
    assert supervised == ["web", "models", "imports", "ranking", "beat"]
    for name in supervised:
        assert re.search(rf"^run_{name}\(\) {{[^\n]*\n  exec ", up, re.MULTILINE), name
    assert "wait -n" not in up  # the old way: one exit stopped the whole stack
