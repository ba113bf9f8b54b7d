"""Ctrl-C during a long call stops the library through its Cancel and raises Cancelled, which is
also a KeyboardInterrupt; nothing is written."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from conftest import CHANNEL, DEMO_BASE

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import conda_docker

    def progress(event, message):
        if event == "install.started":
            print("STARTED", flush=True)
            time.sleep(3)  # the build is mid-way when Ctrl-C arrives

    try:
        conda_docker.build(
            ["bzip2", "zstd"], channels=[sys.argv[1]], base="docker-archive:" + sys.argv[2],
            outputs=[sys.argv[3]], cache_dir=sys.argv[4], progress=progress,
        )
        print("FINISHED")
    except KeyboardInterrupt as e:
        print(type(e).__name__, isinstance(e, conda_docker.CondaDockerError), str(e))
        sys.exit(3)
    """
)


def test_sigint_cancels_a_build(tmp_path):
    out = tmp_path / "never.tar"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(CHANNEL), str(DEMO_BASE), str(out), str(tmp_path / "cache")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert proc.stdout.readline().strip() == "STARTED"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 3, (stdout, stderr)
    assert stdout.startswith("Cancelled True cancelled; nothing was written"), (stdout, stderr)
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_sigint_stops_the_console_script(tmp_path):
    """`conda-docker` from the wheel is the same command: Ctrl-C exits 130, writing nothing."""
    script = os.path.join(os.path.dirname(sys.executable), "conda-docker")
    out = tmp_path / "never.tar"
    proc = subprocess.Popen(
        [script, "build", "-b", f"docker-archive:{DEMO_BASE}", "-c", str(CHANNEL), "--cache-dir",
         str(tmp_path / "cache"), "-o", str(out), "bzip2", "zstd"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait until it is working (it reports reading the base), then interrupt.
    import time

    deadline = time.time() + 30
    while time.time() < deadline and not (tmp_path / "cache").exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert "cancelled" in stderr
    assert not out.exists()


GIL_SCRIPT = textwrap.dedent(
    """
    import functools, http.server, sys, threading
    import conda_docker

    served = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            served.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=sys.argv[1])
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    events = []
    conda_docker.build(
        ["bzip2", "zstd"], channels=[f"http://127.0.0.1:{server.server_port}/"],
        base="docker-archive:" + sys.argv[2], cache_dir=sys.argv[3],
        progress=lambda event, message: events.append(event),
    )
    packages = [p for p in served if p.endswith((".conda", ".tar.bz2"))]
    print(len(packages), "install.finished" in events)
    """
)


def test_long_calls_release_the_gil(tmp_path):
    """Another Python thread runs while a build works: the channel is served by a Python thread
    of the building process, which could not answer if the build held the GIL (and the progress
    callback is called from the library's threads)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", GIL_SCRIPT, str(CHANNEL), str(DEMO_BASE), str(tmp_path / "cache")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    # A watchdog, not a speed limit: a build that never ends fails as a hang.
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"hung: the build was still running after 300 s and was killed:\n{stderr}")
    assert proc.returncode == 0, (stdout, stderr)
    packages, finished = stdout.split()
    assert int(packages) >= 2, (stdout, stderr)  # bzip2, zstd and their dependencies
    assert finished == "True", (stdout, stderr)


def test_ctrl_c_still_reaches_python_after_the_cli_ran_in_process():
    script = textwrap.dedent(
        """
        import os, signal, time
        import conda_docker.cli
        assert conda_docker.cli.cli(["cache", "info", "--json"]) == 0
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
            print("not interrupted")
        except KeyboardInterrupt:
            print("interrupted")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("interrupted") and "not" not in out.stdout, out
