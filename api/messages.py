"""People's words for errors (issue 25): the ``message`` of the error shape in the language the
request prefers. Imports nothing from ``api``, so every middleware may use it."""

from __future__ import annotations

from contextvars import ContextVar

MESSAGES_JA: dict[str, str] = {
    "VALIDATION_ERROR": "入力内容が正しくありません。",
    "UNAUTHENTICATED": "サインインが必要です。トークンがないか、期限切れか、無効です。",
    "RATE_LIMITED": "リクエストが多すぎます。しばらく待ってから再度お試しください。",
    "PAYLOAD_TOO_LARGE": "送信したデータが大きすぎます。",
    "CONFIGURATION_ERROR": "サービスの設定に誤りがあります。管理者に連絡してください。",
    "NOT_FOUND": "見つかりません（存在しないか、閲覧する権限がありません）。",
    "FORBIDDEN": "この操作を行う権限がありません。",
    "POLICY_BLOCKED": "社内ガイドラインにより、この内容は受け付けられません。",
    "NO_INDEXED_DOCUMENTS": "ナレッジベースにまだ文書がありません。",
    "PARSE_ERROR": "ファイルを読み取れませんでした。",
    "INGEST_ERROR": "文書を取り込めませんでした。",
    "INVALID_FILENAME": "ファイル名が正しくありません。",
    "FILE_TOO_LARGE": "ファイルが大きすぎます。",
    "CONFLICT": "既にある内容と重複するか、矛盾しています。",
    "STORE_ERROR": "検索索引を利用できません。しばらくしてから再度お試しください。",
    "STORE_LOCKED": "検索索引が別のプロセスに使われています。",
    "DATABASE_UNAVAILABLE": "データベースに接続できません。しばらくしてから再度お試しください。",
    "NOT_READY": "サービスの起動中です。しばらくしてから再度お試しください。",
    "LLM_PROVIDER_ERROR": "回答を生成するモデルが応答しませんでした。",
    "LLM_TIMEOUT": "回答を生成するモデルが時間内に応答しませんでした。",
    "INTERNAL_ERROR": "サービス内部でエラーが発生しました。",
    "METHOD_NOT_ALLOWED": "この操作はこのURLでは使えません。",
    "HTTP_ERROR": "リクエストを処理できませんでした。",
}
"""People's words for each error code in Japanese; the English message is the detail."""

LANGS = ("ja", "en")
_LANG: ContextVar[str] = ContextVar("kb_error_lang", default="en")


def preferred_lang(accept_language: str | None) -> str:
    """``ja`` or ``en``: the first of them in an ``Accept-Language`` header by weight
    (``en`` when it names neither)."""
    best, best_q = "en", -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower()[:2]
        if lang not in LANGS:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue  # q=0: "not this one"
        # Equal weights: the earlier one wins (the order the browser lists them in).
        if q > best_q:
            best, best_q = lang, q
    return best


def current_lang() -> str:
    """The language of this request's error messages (``ja`` or ``en``)."""
    return _LANG.get()


def error_body(code: str, detail: str, lang: str | None = None) -> dict[str, str]:
    """The error shape: code, detail, and ``message`` in ``lang`` (default: the request's)."""
    lang = lang or _LANG.get()
    message = detail
    if lang == "ja":
        sentence = MESSAGES_JA.get(code, MESSAGES_JA["HTTP_ERROR"])
        message = f"{sentence}（{detail}）" if detail else sentence
    return {"error_code": code, "detail": detail, "message": message}
