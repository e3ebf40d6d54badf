"""What every servicer needs: the config, the pod, and long-lived agent parts."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import agent
from sidecar.config import Config


@dataclass
class Deps:
    """Shared state handed to every servicer at registration.

    Attributes:
        config: the sidecar's config.
        pod: the agent's view of the pod.
        started: epoch seconds at which the sidecar started.
        parts: long-lived agent components by name (e.g. "recorder"), added
            by the services that own them; closed by ``close()``.
        stopping: set when the sidecar begins a graceful shutdown. Streams
            check it, put their resume cursor(s) in the trailing metadata key
            ``borescope-cursor`` and end with UNAVAILABLE.
    """

    config: Config
    pod: agent.Pod
    started: float = field(default_factory=time.time)
    parts: dict[str, Any] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def from_config(cls, config: Config) -> Deps:
        """Build the pod view from config."""
        pod = agent.Pod(
            proc=config.proc_root,
            names=config.container_names,
            local_root=config.local_root or None,
        )
        return cls(config=config, pod=pod)

    def close(self) -> None:
        """Stop every long-lived part (recorder threads, followers)."""
        for part in list(self.parts.values()):
            stop = getattr(part, "close", None)
            if callable(stop):
                stop()
        self.parts.clear()
