// Staff vocabulary (issue 23): list, add and delete sets of equivalent terms. Content owners and
// admins only: the API enforces it (403 otherwise); this page asks /api/me and offers the form
// only to them.
import { apiFetch, mountDevSignIn } from "/static/lib/identity.js";
import { el, say, when } from "/static/lib/dom.js";

const status = document.getElementById("status");
const editor = document.getElementById("editor");
const form = document.getElementById("add-set");
const formStatus = document.getElementById("form-status");
const body = document.querySelector("#sets tbody");

/** "a, b\nc" -> ["a", "b", "c"]: commas (also 、 and ，) or line breaks separate terms. */
export function splitTerms(text) {
  return String(text).split(/[,，、\n]/).map((t) => t.trim()).filter(Boolean);
}

/** The API's refusal in plain words. */
function plain(err) {
  if (err.status === 409) return `Not added: ${err.message}. Each set of terms is stored once.`;
  if (err.status === 422) {
    return "Not added: a set needs at least two different terms (separate them with commas or line breaks), none empty.";
  }
  if (err.status === 403) return "Only content owners and admins may change the vocabulary.";
  if (err.status === 401) return "Sign in first.";
  return `Something went wrong: ${err.message}`;
}

async function loadSets() {
  let sets;
  try {
    sets = await apiFetch("/api/synonyms");
  } catch (err) {
    say(status, `Could not load the vocabulary: ${err.message}`, "error");
    return;
  }
  say(status, sets.length ? `${sets.length} set(s).` : "No sets yet.");
  body.replaceChildren(...sets.map((s) => el("tr", { "data-set-id": s.id },
    el("td", { class: "num" }, s.id),
    el("td", {}, el("ul", { class: "terms", "aria-label": `Terms of set ${s.id}` }, s.terms.map((t) => el("li", {}, t)))),
    el("td", {}, s.created_by),
    el("td", {}, when(s.created_at)),
    el("td", {}, el("button", { type: "button", class: "danger", "aria-label": `Delete set ${s.id}: ${s.terms.join(", ")}`,
      onclick: () => remove(s) }, "Delete")))));
}

async function remove(set) {
  try {
    await apiFetch(`/api/synonyms/${set.id}`, { method: "DELETE" });
    say(formStatus, `Deleted set ${set.id} (${set.terms.join(", ")}). It no longer applies from the next question.`, "ok");
  } catch (err) {
    say(formStatus, err.status === 404 ? `Set ${set.id} was already deleted.` : plain(err), "error");
  }
  await loadSets();
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const terms = splitTerms(form.elements.terms.value);
  try {
    const added = await apiFetch("/api/synonyms", { method: "POST", json: { terms } });
    say(formStatus, `Added set ${added.id}: ${added.terms.join(", ")}. It applies from the next question.`, "ok");
    form.reset();
  } catch (err) {
    say(formStatus, plain(err), "error");
  }
  await loadSets();
  form.elements.terms.focus();
});

async function start() {
  editor.hidden = true;
  body.replaceChildren();
  say(formStatus, "");
  let me;
  try {
    me = await apiFetch("/api/me");
  } catch (err) {
    say(status, `Sign in to see the vocabulary (${err.message}).`, "error");
    return;
  }
  if (!me.roles.includes("content_owner") && !me.roles.includes("admin")) {
    say(status, `The vocabulary is kept by content owners and admins. You are ${me.user_id} ` +
      `(roles: ${me.roles.join(", ") || "none"}).`, "error");
    return;
  }
  editor.hidden = false;
  await loadSets();
}

mountDevSignIn(document.getElementById("identity"), {
  defaults: { userId: "owner-1", roles: "content_owner", groups: "", department: "support" },
  onChange: start,
});
