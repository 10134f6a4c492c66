"""py-spy over a worker process, summarised: where the time of a drain goes.

``record`` starts ``py-spy record`` on a pid (collapsed stacks, raw format);
``summary`` reads such a file and lists the frames with the most samples of
their own and, among this repository's frames, the most samples in total.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

OURS = ("stream_app/", "agents/", "tables/")


def record(pid: int, out: Path, rate: int = 50) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` into ``out`` until ``stop`` (SIGINT); returns once
    it samples (it says so first), so a short drain is not missed."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    cmd = [spy, "record", "-p", str(pid), "-r", str(rate), "-f", "raw", "-o", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--nonblocking"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    # "py-spy> Sampling process ..." first, or why it cannot
    line = proc.stdout.readline() if proc.stdout is not None else b""
    if b"Sampling" not in line:
        proc.communicate(timeout=10)
        raise RuntimeError(f"py-spy could not sample pid {pid}: {line.decode().strip()}")
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    try:
        proc.communicate(timeout=30)  # reads what it says at exit, closes the pipe
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def summary(path: Path, top: int = 12) -> str:
    if not path.is_file():
        return f"{path}: no samples written (the drain ended before py-spy's first)"
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[_function(frames[-1])] += n
        for name in {_function(f) for f in frames}:
            total[name] += n
    if not samples:
        return f"{path}: no samples"
    lines = [f"{samples:,} samples; own time:"]
    lines += [f"  {n / samples:6.1%}  {name}" for name, n in own.most_common(top)]
    lines.append("total time, this repository's functions (the process's entry points left out):")
    ours = [
        (name, n)
        for name, n in total.most_common()
        if name.split(" (")[-1].startswith(OURS) and n < 0.85 * samples
    ]
    lines += [f"  {n / samples:6.1%}  {name}" for name, n in ours[:top]]
    return "\n".join(lines)


def _function(frame: str) -> str:
    """'name (path:line)' -> 'name (path)': lines of one function counted together."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


if __name__ == "__main__":
    print(summary(Path(sys.argv[1])))
