"""Labels, annotations and names shared with the client (tui/kube/names.py).

The two copies are kept equal by a test: ``sidecar`` and ``tui`` do not import each other.
"""

from __future__ import annotations

#: Pods with this label set to "true" get the sidecar from the webhook.
LABEL_INJECT = "borescope.io/inject"
#: Set by the webhook on the pods it changed (idempotence marker).
ANN_STATUS = "borescope.io/status"
STATUS_INJECTED = "injected"
#: Names the Secret holding the bearer token (key ``token``) and its hash (key ``sha256``).
ANN_TOKEN_SECRET = "borescope.io/token-secret"  # noqa: S105 (a name, not a secret)
TOKEN_KEY = "token"  # noqa: S105
TOKEN_HASH_KEY = "sha256"  # noqa: S105
#: The UID the sidecar runs as, when the pod spec does not say it.
ANN_UID = "borescope.io/uid"
#: Name of the sidecar container (injected or static); ephemeral ones are ``borescope-XXXXX``.
SIDECAR_CONTAINER = "borescope"
#: The sidecar's gRPC port inside the pod (loopback only).
SIDECAR_PORT = 7777
#: The sidecar's /tmp (an emptyDir: the root filesystem is read-only).
TMP_VOLUME = "borescope-tmp"
#: Set on the injector's own pods so it never injects into itself.
LABEL_ROLE = "borescope.io/role"
ROLE_INJECTOR = "injector"
#: Per-pod choice of profile ("privileged" only if the chart allows it).
ANN_PROFILE = "borescope.io/profile"
