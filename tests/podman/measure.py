"""Measure the sidecar image for the README: uncompressed size, cold and cached build time.

``python -m tests.podman.measure [--repeat N]`` builds everything cold (no
image, no buildah layer cache: debootstrap base, sidecar, app) N times, then
runs the cached path (inputs unchanged: the tags are found by hash) N times,
and prints the median of each. Cold times include debootstrap downloading from
the Debian mirror and the host's pip filling the wheelhouse (pip's own cache
may be warm), so they depend on the network.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

from tests.podman.build import BuildError, Images, build_all, image_size, missing_tools


def timed_build(cold: bool) -> tuple[Images, float]:
    """One build_all and its wall time in seconds."""
    t0 = time.monotonic()
    images = build_all(cold=cold)
    return images, time.monotonic() - t0


def main(argv: Sequence[str] | None = None) -> int:
    """Print one line per figure: median over the runs, and every run."""
    p = argparse.ArgumentParser(prog="python -m tests.podman.measure", description=__doc__)
    p.add_argument("--repeat", type=int, default=3, help="runs of each kind (default 3)")
    p.add_argument("--quick", action="store_true", help="one run of each kind")
    args = p.parse_args(argv)
    repeat = 1 if args.quick else max(1, args.repeat)
    missing = missing_tools()
    if missing:
        print(f"missing tools: {', '.join(missing)} (run .ci/podman-setup.sh)", file=sys.stderr)
        return 1
    cold: list[tuple[Images, float]] = []
    cached: list[float] = []
    try:
        for _ in range(repeat):
            cold.append(timed_build(cold=True))
        for _ in range(repeat):
            images, seconds = timed_build(cold=False)
            if not all(images.cached.values()):
                # Someone changed the sources meanwhile: that was a rebuild, not a cache hit.
                print("sources changed during the cached runs; run again", file=sys.stderr)
                return 1
            cached.append(seconds)
    except BuildError as e:
        print(str(e), file=sys.stderr)
        return 1
    last = cold[-1][0]
    size = image_size(last.sidecar)

    def line(name: str, values: list[float]) -> str:
        runs = ", ".join(f"{v:.1f}" for v in values)
        return f"{name}: {statistics.median(values):.1f} s (median of {len(values)}: {runs})"

    print(f"sidecar image: {size / 1e6:.1f} MB uncompressed ({last.sidecar})")
    print(f"app image: {image_size(last.app) / 1e6:.2f} MB uncompressed ({last.app})")
    print(line("cold build, all images", [t for _, t in cold]))
    for step in ("base", "sidecar", "app"):
        print(line(f"  cold {step}", [i.seconds[step] for i, _ in cold]))
    print(line("cached build (inputs unchanged)", cached))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
