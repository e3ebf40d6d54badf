"""Keep the e2e images from filling the disk: old tags and old layer caches go.

Every change to the sidecar's sources makes a new image (its tag is an input
hash), and every build leaves untagged images behind (buildah's per-step
cache, the build stage's result): about 1 GB per cold build. After a build,
``tags()`` keeps the newest few tags of a repository and ``untagged()``
removes untagged, childless images carrying our label, repeatedly, so whole
abandoned chains go while the chains of kept images stay. Images a container
uses are never removed (podman refuses), nor anything without our label.
"""

from __future__ import annotations

import json
import subprocess

#: Tags kept per repository (the current one and the one before).
KEEP_TAGS = 2
#: Upper bound on removal passes (each pass removes one level of a chain).
MAX_PASSES = 64


def _images(*args: str) -> list[dict[str, object]]:
    out = subprocess.run(
        ["podman", "images", *args, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    images: list[dict[str, object]] = json.loads(out or "[]")
    return images


def _rmi(ref: str) -> bool:
    return subprocess.run(["podman", "rmi", ref], capture_output=True, check=False).returncode == 0


def tags(repo: str, keep: int = KEEP_TAGS) -> list[str]:
    """Untag all but the newest ``keep`` images of ``repo``; returns the removed tags."""
    tagged = [
        (int(str(img.get("Created", 0))), name)
        for img in _images("--filter", f"reference={repo}")
        for name in img.get("Names") or []  # type: ignore[attr-defined]
        if str(name).startswith(f"{repo}:")
    ]
    old = [str(name) for _, name in sorted(tagged, reverse=True)[keep:]]
    return [name for name in old if _rmi(name)]


def untagged(label: str) -> int:
    """Remove untagged, childless images labelled ``label``, level by level.

    Returns:
        How many images were removed.
    """
    removed = 0
    for _ in range(MAX_PASSES):
        images = _images("-a")
        parents = {str(i.get("ParentId") or "") for i in images}
        doomed = [
            str(i["Id"])
            for i in images
            if not i.get("Names") and i["Id"] not in parents and label in (i.get("Labels") or {})  # type: ignore[operator]
        ]
        gone = sum(_rmi(image_id) for image_id in doomed)
        removed += gone
        if not gone:
            break
    return removed
