// trailseal console: live updates by polling HTML fragments, and in-browser proof verification.
// No framework, no build step. Everything the server sends is already escaped HTML.
"use strict";

const HEADERS = { "X-Requested-With": "trailseal-ui" };

async function fetchFragment(url) {
  const response = await fetch(url, { headers: HEADERS, credentials: "same-origin" });
  if (response.status === 401) throw new Error("session ended: reload and log in again");
  if (!response.ok) throw new Error(`the server answered ${response.status}`);
  return response;
}

function liveStream(status) {
  const rows = document.getElementById("rows");
  const tick = async () => {
    try {
      const response = await fetchFragment(`${status.dataset.stream}&after=${encodeURIComponent(status.dataset.cursor)}`);
      const html = (await response.text()).trim();
      status.dataset.cursor = response.headers.get("X-Cursor") || status.dataset.cursor;
      if (html) {
        rows.insertAdjacentHTML("afterbegin", html);
        document.getElementById("empty")?.remove();
        while (rows.rows.length > 500) rows.deleteRow(-1);
      }
      status.textContent = `Live: updated ${new Date().toLocaleTimeString()}.`;
    } catch (error) {
      status.textContent = `Live updates paused: ${error.message}`;
    }
  };
  setInterval(tick, 2000);
}

function liveRegion(region) {
  const every = Number(region.dataset.interval || 5000);
  setInterval(async () => {
    if (region.contains(document.activeElement) && document.activeElement !== document.body) return;
    try {
      region.innerHTML = await (await fetchFragment(region.dataset.live)).text();
    } catch (error) {
      region.setAttribute("data-error", error.message);
    }
  }, every);
}

// RFC 9162 section 2.1.3.2: verify an inclusion proof with WebCrypto SHA-256.
function b64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

async function sha256(...parts) {
  const size = parts.reduce((n, p) => n + p.length, 0);
  const joined = new Uint8Array(size);
  let at = 0;
  for (const part of parts) { joined.set(part, at); at += part.length; }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
}

async function rootFromProof(entry, index, size, path) {
  let fn = index, sn = size - 1;
  let r = await sha256(Uint8Array.of(0), entry);
  for (const p of path) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(Uint8Array.of(1), p, r);
      if (fn % 2 === 0) { while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); } }
    } else {
      r = await sha256(Uint8Array.of(1), r, p);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

async function verifyInBrowser(out) {
  try {
    if (!window.crypto?.subtle) throw new Error("WebCrypto needs a secure context (HTTPS or localhost)");
    const d = out.dataset;
    const path = d.hashes ? d.hashes.split(" ").map(b64) : [];
    const root = await rootFromProof(b64(d.entry), Number(d.index), Number(d.size), path);
    const want = b64(d.root);
    const same = root !== null && root.length === want.length && root.every((v, i) => v === want[i]);
    out.textContent = same
      ? `✔ verified in your browser: the entry hashes to the root of the tree of size ${d.size}`
      : "✘ the proof does NOT lead to the checkpoint's root";
    out.classList.add(same ? "ok" : "bad");
  } catch (error) {
    out.textContent = `could not verify in the browser: ${error.message}`;
    out.classList.add("bad");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("stream-status");
  if (status) liveStream(status);
  document.querySelectorAll("[data-live]").forEach(liveRegion);
  const out = document.getElementById("browser-verify");
  if (out) verifyInBrowser(out);
});
