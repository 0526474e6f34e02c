"""Analytics over the query log, feedback and the queue; the masked CSV export.

Rows of the window are read once (a few columns each) and aggregated here, which keeps the
arithmetic identical on SQLite and PostgreSQL. A question is **deflected** when the bot answered
it and the asker neither gave a thumbs-down nor asked for a person.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from kb.db.engine import Database
from kb.db.models import DocumentRecord, Feedback, PolicyHit, QueryLog, QueueGroup, QueueItem, aware
from kb.retrieval.errors import NotFoundError
from kb.retrieval.guidelines import Guidelines
from kb.services.access import Access, query_sources
from kb.services.memory_admin import stats as memory_stats
from kb.services.queue import get_group

TOP_N = 10


def window(start: date | None, end: date | None) -> tuple[datetime, datetime]:
    """``[start 00:00, end+1 00:00)`` in UTC; the last 30 days by default."""
    end = end or datetime.now(UTC).date()
    start = start or end - timedelta(days=29)
    return (
        datetime.combine(start, time.min, tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
    )


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def summary(db: Database, start: datetime, end: datetime, access: Access) -> dict[str, Any]:
    """Counts, rates and rankings for questions asked in ``[start, end)``, as ``access`` may
    see them (issue 19): the counts cover every question, but a row that quotes or names
    something (a question's words, a queue group's question, a document) comes only from
    questions and documents the viewer may read; ``hidden_questions`` counts the others.
    """
    with db.session() as s:
        queries = s.execute(
            select(
                QueryLog.id,
                QueryLog.created_at,
                QueryLog.status,
                QueryLog.lang,
                QueryLog.department,
                QueryLog.user_id,
                QueryLog.question,
                QueryLog.citations,
                QueryLog.memory,
            ).where(QueryLog.created_at >= start, QueryLog.created_at < end)
        ).all()
        in_window = select(QueryLog.id).where(
            QueryLog.created_at >= start, QueryLog.created_at < end
        )
        feedback: dict[str, bool] = dict(
            s.execute(
                select(Feedback.query_id, Feedback.helpful).where(Feedback.query_id.in_(in_window))
            )
            .tuples()
            .all()
        )
        items: dict[str, list[Any]] = dict(
            s.execute(
                select(QueueItem.query_id, QueueItem.reasons).where(
                    QueueItem.query_id.in_(in_window)
                )
            )
            .tuples()
            .all()
        )
        group_counts = s.execute(
            select(QueueGroup.id, func.count(QueueItem.id).label("n"))
            .join(QueueItem, QueueItem.group_id == QueueGroup.id)
            .join(QueryLog, QueryLog.id == QueueItem.query_id)
            .where(QueryLog.created_at >= start, QueryLog.created_at < end)
            .group_by(QueueGroup.id)
            .order_by(func.count(QueueItem.id).desc(), QueueGroup.id)
            .limit(TOP_N * 5)
        ).all()
        documents = [
            (doc_id, title)
            for doc_id, title, groups in s.execute(
                select(DocumentRecord.id, DocumentRecord.title, DocumentRecord.groups).where(
                    DocumentRecord.status != "failed"
                )
            ).all()
            if access.reads(groups)
        ]
        policy_hits = s.execute(
            select(func.count(PolicyHit.id)).where(
                PolicyHit.created_at >= start, PolicyHit.created_at < end
            )
        ).scalar_one()

    sources = query_sources(db, ((q.id, q.citations) for q in queries))
    readable = {q.id for q in queries if access.reads_all(sources[q.id])}
    unanswered: list[dict[str, Any]] = []
    for group_id, count in group_counts:
        if len(unanswered) >= TOP_N:
            break
        try:
            view = get_group(db, group_id, access)
        except NotFoundError:
            continue  # every question of it is hidden from the viewer
        unanswered.append(
            {
                "group_id": group_id,
                "representative": view["representative"],
                "state": view["state"],
                "count": count,
                "hidden": view["hidden"],
                "assignee": view["assignee"],
            }
        )

    def user_escalated(qid: str) -> bool:
        return "user_escalation" in items.get(qid, [])

    def from_memory(q: Any) -> bool:
        """Answered from a passage confirmed questions pointed to (issue 22)."""
        if q.status != "answered" or not q.memory or not q.citations:
            return False
        first = min(q.citations, key=lambda c: int(c.get("n", 0))).get("chunk_id")
        return any(m.get("kind") == "pair" and first == m.get("chunk_id") for m in q.memory)

    def gap_escalated(q: Any) -> bool:
        return q.status == "escalated" and any(
            m.get("kind") == "gap" and m.get("applied") for m in q.memory or []
        )

    def deflected(q: Any) -> bool:
        return bool(
            q.status == "answered" and feedback.get(q.id) is not False and not user_escalated(q.id)
        )

    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    per_dept: dict[str, Counter[str]] = defaultdict(Counter)
    per_lang: dict[str, Counter[str]] = defaultdict(Counter)
    questions: Counter[str] = Counter()
    cited: Counter[str] = Counter()
    users: Counter[str] = Counter()
    for q in queries:
        d = deflected(q)
        for bucket in (
            per_day[aware(q.created_at).date().isoformat()],
            per_dept[q.department or "(none)"],
            per_lang[q.lang],
        ):
            bucket["questions"] += 1
            bucket["answered"] += q.status == "answered"
            bucket["escalated"] += q.status == "escalated" or user_escalated(q.id)
            bucket["deflected"] += d
            bucket["from_memory"] += from_memory(q)
        users[q.user_id] += 1
        if q.id not in readable:
            continue
        questions[" ".join(q.question.split()).lower()] += 1
        for doc_id in {c["document_id"] for c in q.citations}:
            cited[doc_id] += 1

    def rows(table: dict[str, Counter[str]], key: str) -> list[dict[str, Any]]:
        return [
            {
                key: k,
                **dict(c),
                "deflection_rate": _rate(c["deflected"], c["questions"]),
            }
            for k, c in sorted(table.items(), key=lambda kv: (-kv[1]["questions"], kv[0]))
        ]

    titles = dict(documents)
    n = len(queries)
    helpful = sum(1 for v in feedback.values() if v)
    answered = sum(1 for q in queries if q.status == "answered")
    escalated = sum(1 for q in queries if q.status == "escalated" or user_escalated(q.id))
    return {
        "from": start.date().isoformat(),
        "to": (end - timedelta(days=1)).date().isoformat(),
        "questions": n,
        "answered": answered,
        "deflected": sum(1 for q in queries if deflected(q)),
        "deflection_rate": _rate(sum(1 for q in queries if deflected(q)), n),
        "escalations": escalated,
        "from_memory": sum(1 for q in queries if from_memory(q)),
        "memory_share": _rate(sum(1 for q in queries if from_memory(q)), answered),
        "gap_escalations": sum(1 for q in queries if gap_escalated(q)),
        "memory_entries": memory_stats(db),
        "bot_escalations": sum(1 for q in queries if q.status == "escalated"),
        "user_escalations": sum(1 for q in queries if user_escalated(q.id)),
        "feedback": len(feedback),
        "thumbs_down": len(feedback) - helpful,
        "helpful_share": _rate(helpful, len(feedback)),
        "policy_hits": policy_hits,
        "hidden_questions": n - len(readable),
        "per_day": sorted(rows(per_day, "date"), key=lambda r: r["date"]),
        "per_department": rows(per_dept, "department"),
        "per_language": rows(per_lang, "lang"),
        "top_questions": [
            {"question": text, "count": count} for text, count in questions.most_common(TOP_N)
        ],
        "top_unanswered_groups": unanswered,
        "most_cited_documents": [
            {"document_id": doc_id, "title": titles.get(doc_id, ""), "citations": count}
            for doc_id, count in [c for c in cited.most_common() if c[0] in titles][:TOP_N]
        ],
        "never_cited_documents": [
            {"document_id": doc_id, "title": title}
            for doc_id, title in sorted(documents, key=lambda d: d[1])
            if doc_id not in cited
        ],
        "most_active_users": [
            {"user_id": user, "questions": count} for user, count in users.most_common(TOP_N)
        ],
        "most_active_departments": [
            {"department": r["department"], "questions": r["questions"]}
            for r in rows(per_dept, "department")[:TOP_N]
        ],
    }


EXPORT_COLUMNS = (
    "query_id",
    "asked_at",
    "user_id",
    "department",
    "groups",
    "lang",
    "status",
    "confidence",
    "question",
    "redactions",
    "cited_documents",
    "latency_ms",
    "helpful",
    "feedback_comment",
    "queue_group_id",
    "queue_reasons",
)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # Spreadsheet formula injection: a cell starting with = + - @ would run as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_csv(
    db: Database, guidelines: Guidelines, start: datetime, end: datetime, access: Access
) -> Iterator[str]:
    """The log of ``[start, end)`` as CSV lines, the questions ``access`` may read (issue 19).
    Text is masked again on the way out, so names added to the lists after a question was
    stored do not leave either."""
    with db.session() as s:
        rows = s.execute(
            select(QueryLog, Feedback, QueueItem)
            .outerjoin(Feedback, Feedback.query_id == QueryLog.id)
            .outerjoin(QueueItem, QueueItem.query_id == QueryLog.id)
            .where(QueryLog.created_at >= start, QueryLog.created_at < end)
            .order_by(QueryLog.created_at)
        ).all()
    sources = query_sources(db, ((q.id, q.citations) for q, _f, _i in rows))
    rows = [r for r in rows if access.reads_all(sources[r[0].id])]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(EXPORT_COLUMNS)
    yield buf.getvalue()
    for q, fb, item in rows:
        buf.seek(0)
        buf.truncate()
        writer.writerow(
            [
                _cell(v)
                for v in (
                    q.id,
                    aware(q.created_at).isoformat(),
                    q.user_id,
                    q.department,
                    ";".join(q.groups),
                    q.lang,
                    q.status,
                    round(q.confidence, 4),
                    guidelines.mask(q.question),
                    ";".join(q.redactions),
                    ";".join(sorted({c["document_id"] for c in q.citations})),
                    round(q.latency_ms, 1),
                    None if fb is None else fb.helpful,
                    guidelines.mask(fb.comment) if fb is not None and fb.comment else None,
                    item.group_id if item is not None else None,
                    ";".join(item.reasons) if item is not None else None,
                )
            ]
        )
        yield buf.getvalue()
