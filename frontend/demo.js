// The demo intranet page in Japanese or English (issue 25): the switch changes the page and the
// widget's interface; the widget still reads each question's language from its text.
import { mountLangSwitch, translator } from "/static/lib/i18n.js";

const i18n = translator({
  en: {
    docTitle: "Intranet — Aster Office Products (demo)", brand: "Aster intranet", menu: "Intranet",
    news: "News", hr: "HR", it: "IT", language: "Language", welcome: "Welcome back",
    fleetTitle: "Printer fleet update",
    fleet: "All floors now run the Aster MF-3400. Questions about toner, Wi-Fi or paper jams? Use the assistant in the corner.",
    embedTitle: "How to embed the assistant", embed: "One script tag on any intranet page:",
    attributes: "Optional: a <kb-widget> element with the attributes lang, suggestions, open, inline and (development only) user-id, user-groups, user-roles, user-department.",
  },
  ja: {
    docTitle: "イントラネット — アスター・オフィス・プロダクツ（デモ）", brand: "アスター イントラネット", menu: "イントラネット",
    news: "お知らせ", hr: "人事", it: "情報システム", language: "言語", welcome: "おかえりなさい",
    fleetTitle: "プリンターの入れ替えについて",
    fleet: "全フロアのプリンターが Aster MF-3400 になりました。トナー、Wi-Fi、紙詰まりについての質問は、画面の隅のアシスタントへどうぞ。",
    embedTitle: "アシスタントの埋め込み方", embed: "イントラネットのページにスクリプトタグを1つ追加します：",
    attributes: "任意：<kb-widget> 要素に属性 lang、suggestions、open、inline と（開発時のみ）user-id、user-groups、user-roles、user-department を指定できます。",
  },
});

function syncWidget() {
  for (const widget of document.querySelectorAll("kb-widget")) widget.setAttribute("lang", i18n.lang);
}

mountLangSwitch(document.getElementById("lang"), i18n);
i18n.apply();
syncWidget();
i18n.onChange(syncWidget);
