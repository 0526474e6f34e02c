"""Who is asking: the caller of an operation, however the API or the CLI established it."""

from __future__ import annotations

from dataclasses import dataclass

from kb.retrieval.models import AccessFilter
from kb.services.access import Access, access_for


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is asking, as the API (``api.deps.get_identity``) or the CLI established it."""

    user_id: str
    groups: tuple[str, ...]
    roles: tuple[str, ...]
    department: str | None
    via: str = "dev"
    """How the identity was established: ``token``, ``widget``, ``oidc``, ``dev``, ``cli``."""

    @property
    def acl(self) -> AccessFilter:
        """What this user may read."""
        return AccessFilter(groups=self.groups)

    @property
    def access(self) -> Access:
        """What this caller may see and do (:mod:`services.access`)."""
        return access_for(self)
