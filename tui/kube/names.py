"""Labels, annotations and names shared with the injector (sidecar/injector/names.py).

The two copies are kept equal by a test: ``tui`` may not import ``sidecar``.
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
