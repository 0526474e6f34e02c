"""The guidelines applied at the API's edge: mask what is stored, refuse and record blocked
topics. Masking itself lives in :mod:`retrieval.guidelines`."""

from __future__ import annotations

from kb.db.engine import Database
from kb.db.models import PolicyHit
from kb.retrieval.guidelines import Guidelines, PolicyBlockedError, Screened
from kb.retrieval.settings import GuidelineSettings


def guidelines_for(settings: GuidelineSettings) -> Guidelines:
    """The compiled guidelines of ``settings`` (cached)."""
    return Guidelines.from_settings(settings)


def screen_or_refuse(
    db: Database,
    guidelines: Guidelines,
    text: str,
    *,
    user_id: str,
    department: str | None,
    endpoint: str,
) -> Screened:
    """Mask ``text``; when it mentions a blocked term, record a policy hit and refuse.

    :raises PolicyBlockedError: a blocked term is present (the hit is committed first).
    """
    screened = guidelines.screen(text)
    if screened.blocked:
        with db.session() as s:
            s.add(
                PolicyHit(
                    user_id=user_id,
                    department=department,
                    rule="blocked_term",
                    terms=list(screened.blocked),
                    endpoint=endpoint,
                    text=guidelines.redact_blocked(screened.text),
                )
            )
        raise PolicyBlockedError(guidelines.message)
    return screened
