"""Two-turn dialogues over the sample knowledge base (issue 23): a first question, then a
follow-up that leans on it, and the document the follow-up must cite first."""

from __future__ import annotations

GUIDE = "manuals/aster-mf3400-user-guide.pdf"
GUIDE_JA = "manuals/aster-mf3400-guide-ja.docx"
NOTES = "manuals/aster-mf3400-release-notes.pptx"
PRICES = "faq/consumables-price-list.xlsx"
FAQ = "faq/kos-support-faq.csv"
TL_USER = "manuals/teamledger-user-guide.html"
TL_ADMIN = "manuals/teamledger-admin-guide-ja.md"

# (first question, follow-up, documents the follow-up's first citation may be)
DIALOGUES: list[tuple[str, str, tuple[str, ...]]] = [
    # English
    ("How do I connect the Aster MF-3400 to the office Wi-Fi?",
     "Where do I find the initial admin password for its Web Console?", (GUIDE,)),
    ("How many pages per minute does the Aster MF-3400 print?",
     "What are its dimensions?", (GUIDE,)),
    ("What does a cyan toner cartridge for the Aster cost?",
     "And the drum unit for it?", (PRICES,)),
    ("How do I reset my TeamLedger password?",
     "How long is the link in that email valid?", (TL_USER, FAQ)),
    ("How many approval steps can a TeamLedger approval route have?",
     "Can I approve several of them at once?", (TL_USER,)),
    ("What file types does TeamLedger accept for receipt uploads?",
     "How many of those photos can the phone app keep offline?", (TL_USER,)),
    ("How do I scan to a shared folder on the Aster?",
     "What if it shows an error when sending by email?", (GUIDE, GUIDE_JA, FAQ)),
    ("Which firmware fixed the E-200 fuser error on the Aster?",
     "From which version does it support WPA3?", (GUIDE, GUIDE_JA, NOTES)),
    ("How does TeamLedger convert foreign currency receipts?",
     "What rate does it use per kilometer for my own car?", (TL_USER, TL_ADMIN)),
    ("How long does a secure print job wait on the Aster?",
     "What if I forget the PIN for it?", (FAQ,)),
    ("Is the Aster MF-3400 covered by the standard warranty after 18 months?",
     "Can we move it to another floor ourselves?", (FAQ,)),
    ("How do I copy both sides of an ID card on the Aster?",
     "Can it print on A3 paper?", (GUIDE, GUIDE_JA, FAQ)),
    # Japanese
    ("複合機のトナーが少なくなったときの表示コードは何ですか？",
     "その交換方法は？", (GUIDE_JA, GUIDE)),
    ("Aster MF-3400 のスリープまでの時間は変更できますか？",
     "スリープ中の消費電力は？", (GUIDE_JA, GUIDE)),
    ("TeamLedger の経費は何日以内に申請する必要がありますか？",
     "それは電子帳簿保存法に対応していますか？", (TL_ADMIN, FAQ)),
    ("TeamLedger の 1 ユーザーあたりの月額料金はいくらですか？",
     "解約後、データはいつまで取り出せますか？", (FAQ,)),
    ("TeamLedger で承認ルートを設定する方法は？",
     "金額が大きい申請だけ部長の承認を追加するには？", (TL_ADMIN,)),
    ("TeamLedger にユーザーを CSV で一括登録できますか？",
     "1 ファイルに何行まで入れられますか？", (TL_ADMIN, FAQ)),
    ("複合機で紙がつまったときの取り除き方を教えてください。",
     "手差しトレイには、はがきを何枚までセットできますか？", (GUIDE_JA, FAQ)),
    ("ドラムユニットは何枚くらいで交換になりますか？",
     "その価格はいくらですか？", (PRICES,)),
    ("TeamLedger は IP アドレスでアクセス制限できますか？",
     "退職した社員のアカウントはどう処理しますか？", (TL_ADMIN,)),
    ("TeamLedger はレシートの写真から金額を読み取れますか？",
     "電波のない場所で撮った写真はどうなりますか？", (TL_USER, FAQ)),
    ("複合機のファームウェア更新には何分くらいかかりますか？",
     "その更新で TLS 1.0 のメールサーバーにも送信できますか？", (NOTES,)),
    ("外線発信に 0 が必要な環境でファクスを送るには？",
     "受信したファクスをメールに転送できますか？", (GUIDE, GUIDE_JA, FAQ)),
]  # fmt: skip
