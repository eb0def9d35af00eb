"""Domain errors: what a use case raises when a command breaks a rule.

Use cases know nothing of HTTP. They raise one of these with a ``code`` (the problem type's slug,
stable for clients) and a sentence for a person; ``crm_shared.problems`` turns them into
problem+json in one place, and an event handler lets them dead-letter the event.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """A command that the rules refuse. Subclasses say which kind of refusal it is."""

    status: ClassVar[int] = 422
    default_title: ClassVar[str] = "Unprocessable Content"
    default_code: ClassVar[str] = "rule-violation"

    def __init__(self, detail: str, *, code: str | None = None, title: str | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.title = title or self.default_title
        self.extensions = extensions


class RuleViolation(DomainError):
    """The command is well formed but a business rule forbids it (422)."""


class NotFoundError(DomainError):
    """What the command names does not exist (404)."""

    status = 404
    default_title = "Not found"
    default_code = "not-found"

    @classmethod
    def of(cls, what: str, key: str) -> NotFoundError:
        return cls(f"{what} {key!r} does not exist")


class ConflictError(DomainError):
    """The command collides with the current state or a concurrent command (409)."""

    status = 409
    default_title = "Conflict"
    default_code = "conflict"


class NotPermitted(DomainError):
    """The caller may not do this to this record (403)."""

    status = 403
    default_title = "Forbidden"
    default_code = "forbidden"


class Gone(DomainError):
    """What the command names existed and was removed for good, e.g. erased (410)."""

    status = 410
    default_title = "Gone"
    default_code = "gone"


class PreconditionFailed(DomainError):
    """The caller's ``If-Match`` names another version than the one in force (412)."""

    status = 412
    default_title = "Precondition Failed"
    default_code = "precondition-failed"


class CustomerErased(ConflictError):
    """A write about a customer the profile erased: it would store personal data again (409)."""

    default_code = "customer-erased"

    def __init__(self, detail: str = "this customer was erased; nothing new about them is recorded") -> None:
        super().__init__(detail)
