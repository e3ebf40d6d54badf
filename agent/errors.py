"""The agent's exception hierarchy.

Every failure the agent reports to a caller is one of these. The sidecar's
error interceptor maps each class to one gRPC status code; the message is
shown to a person as-is, so it says what happened and what to do about it.
This module imports nothing from the rest of the package.
"""

from __future__ import annotations


class BorescopeError(Exception):
    """Base class: a failure a person can act on."""


class NotFound(BorescopeError):
    """The container, process, path, source or cursor does not exist (NOT_FOUND)."""


class AccessDenied(BorescopeError):
    """The sidecar lacks the access (UID, capability, confinement) (PERMISSION_DENIED)."""


class NotAllowed(BorescopeError):
    """The sidecar's config forbids the action; the message names the switch (PERMISSION_DENIED)."""


class InvalidArgument(BorescopeError):
    """The request itself is malformed (INVALID_ARGUMENT)."""


class TooLarge(BorescopeError):
    """A bound would be exceeded (RESOURCE_EXHAUSTED)."""


class ProcessRestarted(BorescopeError):
    """The pid now belongs to another process (start time changed) (FAILED_PRECONDITION)."""


class FailedPrecondition(BorescopeError):
    """The object is not in a state the operation needs (FAILED_PRECONDITION)."""


class Unsupported(BorescopeError):
    """The kernel or environment lacks a needed feature (UNIMPLEMENTED / fail closed)."""


class Timeout(BorescopeError):
    """An operation with its own timeout ran out (DEADLINE_EXCEEDED)."""


class CursorLost(BorescopeError):
    """A resume cursor points at data that is gone (OUT_OF_RANGE).

    Attributes:
        earliest: the earliest cursor that can still be served.
    """

    def __init__(self, message: str, earliest: str) -> None:
        super().__init__(message)
        self.earliest = earliest
