// mediasearch's page: the search lives in the URL; results are a grid of pictures and players.
"use strict";

const $ = (id) => document.getElementById(id);
const FIELDS = ["q", "type", "in", "after", "before", "near"];
const PAGE = 24; // results a search shows first; "Show more" asks for this many more
const MAX_LIMIT = 500; // the API's own bound
let current = [];
let more = null; // what "Show more" does for the results shown, or null when there are no more

function clock(seconds) {
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = (seconds % 60).toFixed(1);
  const ss = s.padStart(4, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

function span(hit) {
  if (hit.start === null || hit.start === undefined) return "";
  return hit.start === hit.end ? clock(hit.start) : `${clock(hit.start)}–${clock(hit.end)}`;
}

function day(taken, withTime) {
  // The capture time in this browser's local time (an EXIF time without a zone is local already).
  if (taken === null || taken === undefined) return "";
  const when = new Date(taken * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  const date = `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())}`;
  return withTime ? `${date} ${pad(when.getHours())}:${pad(when.getMinutes())}` : date;
}

function whenWhere(hit) {
  // "2019-07-15 · Lisbon, Portugal": a place name, never a map (nothing is fetched from elsewhere).
  return [day(hit.taken), hit.place].filter(Boolean).join(" · ");
}

function paramsFromForm() {
  const params = new URLSearchParams();
  for (const name of FIELDS) {
    const value = $(name).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

function fillForm(params) {
  for (const name of FIELDS) $(name).value = params.get(name) || "";
}

function apiQuery(params) {
  // The text goes as typed: the server reads words, -word and "a phrase" with the core's one parser.
  const api = new URLSearchParams();
  for (const [key, value] of params) {
    if (key !== "view" && key !== "similar") api.set(key, value);
  }
  return api;
}

function limitOf(params) {
  const limit = parseInt(params.get("limit") || "", 10);
  return Number.isFinite(limit) && limit > 0 ? Math.min(limit, MAX_LIMIT) : PAGE;
}

function folderText(folder) {
  // A line may break after a slash (and at spaces), never inside a folder's name.
  const parts = folder.split("/");
  const last = parts.pop();
  return [...parts.flatMap((part) => [document.createTextNode(part + "/"), document.createElement("wbr")]), last];
}

async function call(url, options) {
  const response = await fetch(url, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.message || response.statusText);
  return data;
}

function say(text) {
  $("message").textContent = text;
}

function card(hit, index) {
  const item = document.createElement("article");
  item.className = "card";
  item.dataset.kind = hit.kind;
  if (hit.id === null) {
    const elsewhere = document.createElement("div");
    elsewhere.className = "elsewhere";
    elsewhere.textContent = `on ${hit.host}`;
    item.append(elsewhere);
  } else if (hit.kind === "audio") {
    const wave = document.createElement("img"); // the sound of the hit's window, drawn by the server
    wave.className = "wave";
    wave.loading = "lazy";
    wave.alt = `the sound of ${hit.name}${span(hit) ? " at " + span(hit) : ""}`;
    wave.src = hit.thumb;
    item.append(wave);
    const player = document.createElement("audio");
    player.controls = true;
    player.preload = "metadata";
    player.src = `${hit.file}#t=${hit.start ?? 0}`;
    player.dataset.start = hit.start ?? 0;
    item.append(player);
  } else {
    const picture = document.createElement("img");
    picture.loading = "lazy";
    picture.alt = hit.name;
    picture.src = hit.thumb;
    item.append(picture);
  }
  const open = document.createElement("button");
  open.type = "button";
  open.className = "open name";
  open.textContent = hit.name;
  open.addEventListener("click", () => showDetail(index));
  const meta = document.createElement("div");
  meta.className = "meta";
  const matched = hit.kind === "video" && hit.matched ? (hit.matched === "audio" ? " · sound" : " · frame") : "";
  const folder = document.createElement("span");
  folder.className = "folder";
  folder.append(...folderText(hit.shown_folder ?? hit.folder));
  meta.append(`${hit.score.toFixed(3)} · ${hit.kind}${matched}${span(hit) ? " · " + span(hit) : ""} · `, folder);
  if (hit.copies && hit.copies.length) meta.append(` · +${hit.copies.length} ${hit.copies.length === 1 ? "copy" : "copies"}`);
  if (hit.example) {
    item.classList.add("example");
    const badge = document.createElement("div");
    badge.className = "badge";
    badge.textContent = "the example";
    item.prepend(badge);
  }
  const taken = document.createElement("div");
  taken.className = "taken";
  taken.textContent = whenWhere(hit);
  item.append(open, meta, taken);
  if (hit.words && hit.words.found.length) item.append(wordsLine(hit, hit.words.found[0]));
  return item;
}

function wordsLine(hit, found) {
  // Where the query's words were found ("text: INVOICE No. 2024-0815", "frame at 0:12.0: ..."), the
  // matched words marked. Built from text nodes only: a file's words are never markup.
  const line = document.createElement("div");
  line.className = "words";
  const at = found.at === null || found.at === undefined ? "" : ` at ${clock(found.at)}`;
  line.append(`${found.source}${at}: `, ...marked(found.snippet, hit.words.matched));
  return line;
}

function fold(text) {
  // Case and accents away, as the index compares words (ß and the like are rare enough to leave).
  return text.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
}

function marked(text, matched) {
  const wanted = matched.flatMap((words) => fold(words).split(" "));
  return text.split(/(\s+)/).map((piece) => {
    const parts = fold(piece).match(/[\p{L}\p{N}]+/gu) || [];
    if (!parts.some((part) => wanted.some((word) => part.startsWith(word)))) return piece;
    const mark = document.createElement("mark");
    mark.textContent = piece;
    return mark;
  });
}

function show(hits, what, limit, onMore) {
  current = hits;
  $("status").hidden = true;
  const grid = $("results");
  grid.hidden = false;
  grid.replaceChildren(...hits.map(card));
  const found = hits.filter((hit) => !hit.example).length;
  // A full page may have more behind it; the API gives at most MAX_LIMIT.
  more = onMore && found >= limit && limit < MAX_LIMIT ? () => onMore(Math.min(limit + PAGE, MAX_LIMIT)) : null;
  $("more-results").hidden = more === null;
  say(found ? `${found} results${what ? " " + what : ""}` : "no results");
}

function showMore(limit) {
  // The longer list replaces this entry in history: back still goes to the previous search.
  const params = new URLSearchParams(location.search);
  params.set("limit", String(limit));
  history.replaceState(null, "", `/?${params}`);
  return run(params);
}

function browserShows(name) {
  return /\.(jpe?g|png|gif|webp|avif|bmp|svg)$/i.test(name);
}

function showDetail(index) {
  const hit = current[index];
  const body = $("detail-body");
  let view;
  if (hit.id === null) {
    view = document.createElement("p");
    view.textContent = `This file is on ${hit.host}, in another library that shares this store: open it there.`;
  } else if (hit.kind === "image") {
    view = document.createElement("img");
    view.src = browserShows(hit.name) ? hit.file : hit.thumb;
    view.alt = hit.name;
  } else {
    view = document.createElement(hit.kind === "video" ? "video" : "audio");
    view.controls = true;
    view.src = `${hit.file}#t=${hit.start ?? 0}`;
    view.autoplay = true;
  }
  const facts = document.createElement("p");
  const duration = hit.duration ? ` · ${clock(hit.duration)} long` : "";
  const size = hit.width ? ` · ${hit.width}×${hit.height}` : "";
  facts.textContent = `${hit.path} · score ${hit.score.toFixed(3)}${span(hit) ? " · best " + span(hit) : ""}${duration}${size}`;
  const where = document.createElement("p");
  where.className = "taken";
  const source = hit.taken_source && hit.taken_source !== "mtime" ? ` (${hit.taken_source})` : " (file date)";
  where.textContent = `taken ${day(hit.taken, true)}${source}${hit.place ? " · " + hit.place : ""}`;
  const words = hit.words ? hit.words.found.map((found) => wordsLine(hit, found)) : [];
  body.replaceChildren(view, facts, where, ...words);
  $("open").hidden = hit.id === null;
  $("more").hidden = hit.id === null;
  if (hit.id !== null) $("open").href = hit.file;
  $("more").onclick = () => {
    $("detail").close();
    navigate(new URLSearchParams({ similar: String(hit.id) }));
  };
  $("detail").showModal();
}

async function showStatus() {
  const data = await call("/api/status");
  $("results").hidden = true;
  const box = $("status");
  box.hidden = false;
  const rows = data.roots
    .map((r) => `<tr><td></td><td>${r.files}</td><td class="${r.state === "online" ? "" : "offline"}"></td></tr>`)
    .join("");
  box.innerHTML = `<h2>Library</h2><p></p><table><tr><th>folder</th><th>files</th><th>state</th></tr>${rows}</table><h3>Failures</h3><ul></ul>`;
  box.querySelector("p").textContent =
    `${data.counts.indexed} files: ${data.counts.image} pictures, ${data.counts.audio} sounds, ${data.counts.video} videos; ` +
    `${data.counts.failed} failed, ${data.counts.ignored} ignored; model ${data.model}`;
  box.querySelectorAll("tr").forEach((tr, i) => {
    if (!i) return;
    const root = data.roots[i - 1];
    tr.children[0].textContent = root.path;
    tr.children[2].textContent = root.state === "online" ? "online" : `offline: ${root.reason}`;
  });
  const list = box.querySelector("ul");
  for (const failure of data.failures.slice(0, 200)) {
    const li = document.createElement("li");
    li.textContent = `${failure.path}: ${failure.error}`;
    list.append(li);
  }
  say("");
}

async function run(params) {
  fillForm(params);
  try {
    if (params.get("view") === "status") return await showStatus();
    const limit = limitOf(params);
    const query = apiQuery(params);
    query.set("limit", String(limit));
    if (params.get("similar")) {
      query.set("example", "1"); // the item it started from comes first, marked as the example
      const hits = await call(`/api/similar/${encodeURIComponent(params.get("similar"))}?${query}`);
      return show(hits, "like that one", limit, showMore);
    }
    if (!params.get("q")) {
      $("results").replaceChildren();
      $("more-results").hidden = true;
      return say("Type some words, or drop a picture or a sound on the page.");
    }
    say("searching…");
    show(await call(`/api/search?${query}`), "", limit, showMore);
  } catch (error) {
    say(error.message);
  }
}

function navigate(params) {
  history.pushState(null, "", `/?${params}`);
  run(params);
}

async function searchByExample(file, limit = PAGE) {
  const form = new FormData();
  form.append("file", file);
  for (const [key, value] of apiQuery(paramsFromForm())) form.append(key, value);
  form.set("limit", String(limit));
  say("searching…");
  try {
    const hits = await call("/api/search", { method: "POST", body: form });
    show(hits, `like ${file.name}`, limit, (next) => searchByExample(file, next));
  } catch (error) {
    say(error.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(paramsFromForm());
  });
  $("example").addEventListener("change", () => {
    if ($("example").files.length) searchByExample($("example").files[0]);
  });
  $("close").addEventListener("click", () => $("detail").close());
  $("more-results").addEventListener("click", () => more && more());
  $("status-link").addEventListener("click", (event) => {
    event.preventDefault();
    navigate(new URLSearchParams({ view: "status" }));
  });
  const drop = $("drop");
  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.hidden = false;
  });
  drop.addEventListener("dragleave", () => (drop.hidden = true));
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.hidden = true;
    if (event.dataTransfer.files.length) searchByExample(event.dataTransfer.files[0]);
  });
  window.addEventListener("popstate", () => run(new URLSearchParams(location.search)));
  run(new URLSearchParams(location.search));
});
