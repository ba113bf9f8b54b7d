"""Ctrl-C during a long call stops the library through its Cancel and raises Cancelled, which is
also a KeyboardInterrupt; nothing is written."""

import os
import signal
import subprocess
import sys
import textwrap

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


def test_long_calls_release_the_gil(tmp_path):
    """Another Python thread runs while a build works (and the progress callback is called
    from the library's threads)."""
    import threading
    import time

    import conda_docker

    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    thread = threading.Thread(target=ticker)
    thread.start()
    events = []
    try:
        started = time.monotonic()
        # Cold builds (a fresh cache each) until one second has passed, so that the ticks
        # counted measure the GIL and not a build that happened to be quick.
        builds = 0
        while builds == 0 or time.monotonic() - started < 1.0:
            conda_docker.build(["bzip2", "zstd"], channels=[str(CHANNEL)], base=f"docker-archive:{DEMO_BASE}",
                               cache_dir=tmp_path / f"cache-{builds}", progress=lambda e, m: events.append(e))
            builds += 1
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
    during = [t for t in ticks if started <= t <= started + elapsed]
    assert len(during) >= elapsed / 0.01 / 4, (elapsed, builds, len(during))
    assert "install.finished" in events


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
