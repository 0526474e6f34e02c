"""Masking and blocking (retrieval/guidelines.py): every kind, full-width forms, no false hits."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.retrieval.guidelines import Guidelines, PolicyBlockedError, luhn_ok
from kb.retrieval.settings import GuidelineSettings


@pytest.fixture(scope="module")
def g() -> Guidelines:
    return Guidelines.from_settings(
        GuidelineSettings(
            customer_names=["Hanako Suzuki", "鈴木花子", "Yamada"],
            employee_names=["Kenji Watanabe"],
            blocked_terms=["Project Hotaru", "ホタル計画"],
        )
    )


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("mail taro.yamada+kb@example.co.jp now", "mail [EMAIL] now"),
        ("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ に送って", "[EMAIL] に送って"),
        ("call 03-1234-5678", "call [PHONE]"),
        ("携帯 090-1234-5678 まで", "携帯 [PHONE] まで"),
        ("０９０－１２３４－５６７８", "[PHONE]"),
        ("09012345678", "[PHONE]"),
        ("(03) 1234-5678", "[PHONE]"),
        ("03(5555)0123", "[PHONE]"),
        ("0120-555-034", "[PHONE]"),
        ("+81 45 555 0340", "[PHONE]"),
        ("+1 (415) 555-0100", "[PHONE]"),
        ("+44 20 7946 0958", "[PHONE]"),
        ("〒220-0012 横浜市", "[POSTCODE] 横浜市"),
        ("〒2200012", "[POSTCODE]"),
        ("zip 123-4567", "zip [POSTCODE]"),
        ("番号 1234 5678 9012", "番号 [MYNUMBER]"),
        ("番号 123456789012 です", "番号 [MYNUMBER] です"),
        ("card 4111 1111 1111 1111", "card [CARD]"),
        ("card 4111-1111-1111-1111.", "card [CARD]."),
        ("5500000000000004", "[CARD]"),
        ("378282246310005", "[CARD]"),
        ("Customer Hanako  Suzuki called", "Customer [NAME] called"),
        ("hanako suzuki called", "[NAME] called"),
        ("鈴木花子さんから", "[NAME]さんから"),
        ("Kenji Watanabe and Yamada", "[NAME] and [NAME]"),
    ],
)
def test_personal_data_becomes_typed_placeholders(g, text, masked):
    assert g.mask(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "On 2025-03-14 at 10:30 the MF-3400 showed E-21",
        "firmware 3.2.1, JPY 12,800, 8,000 pages, tray 2",
        "order 1234567 and serial AS34-25-012345",
        "4111 1111 1111 1112 fails Luhn",  # a 16-digit number that is no card
        "Yamadaya is a shop; the TN-340 toner",
        "version 10.0.19045 build",
    ],
)
def test_ordinary_text_is_left_alone(g, text):
    screened = g.screen(text)
    assert screened.text == text and screened.redactions == ()


def test_screen_reports_the_kinds_and_blocked_terms(g):
    s = g.screen("Hanako Suzuki <h@example.com> asks about PROJECT HOTARU and ホタル計画")
    assert s.text == "[NAME] <[EMAIL]> asks about PROJECT HOTARU and ホタル計画"
    assert s.redactions == ("EMAIL", "NAME") and s.blocked == (0, 1)
    assert g.redact_blocked(s.text) == "[NAME] <[EMAIL]> asks about [BLOCKED] and [BLOCKED]"
    with pytest.raises(PolicyBlockedError) as exc:
        g.check("when is project hotaru out?")
    assert exc.value.code == "POLICY_BLOCKED"
    assert g.check("Hotaru-san is a colleague").blocked == ()  # the whole term, not a part


def test_lists_load_from_files(tmp_path: Path):
    names = tmp_path / "customers.txt"
    names.write_text("# customers\n佐藤一郎\nJohn Smith  # key account\n\n", encoding="utf-8")
    blocked = tmp_path / "codenames.txt"
    blocked.write_text("Kitsunebi\n", encoding="utf-8")
    g = Guidelines.from_settings(
        GuidelineSettings(names_files=[names], blocked_terms_files=[blocked])
    )
    assert g.mask("佐藤一郎様と john smith") == "[NAME]様と [NAME]"
    assert g.screen("Kitsunebi launch").blocked == (0,)


def test_luhn():
    assert luhn_ok("4111111111111111") and luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112")


def test_settings_come_from_the_environment(monkeypatch):
    from kb.retrieval.settings import Settings

    monkeypatch.setenv("KB_GUIDELINES__BLOCKED_TERMS", '["Project Hotaru"]')
    monkeypatch.setenv("KB_SUPPORT__GROUP_SIMILARITY", "0.9")
    settings = Settings(_env_file=None)
    assert settings.guidelines.blocked_terms == ["Project Hotaru"]
    assert settings.support.group_similarity == 0.9 and settings.support.retention_days == 365
