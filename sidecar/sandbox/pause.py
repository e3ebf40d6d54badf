"""The sandbox pod's infra process: pid 1 of the pod, named "pause", reaps orphans.

Like Kubernetes' pause container it does nothing but hold the namespaces open,
reap zombies re-parented to it, and exit on SIGINT/SIGTERM (which ends the
whole PID namespace: the kernel kills every other process in it).
Run by path with the interpreter; it prints ``ready`` once its name is set.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

from sidecar.sandbox import _sys


def _stop(_signum: int, _frame: FrameType | None) -> None:
    # pid 1 of a namespace ignores signals it has no handler for; this one exits.
    os._exit(0)


def _reap(_signum: int, _frame: FrameType | None) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main() -> int:
    _sys.set_comm("pause")
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGCHLD, _reap)
    print("ready", flush=True)
    os.close(1)  # nobody reads further; the harness may close its end
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
