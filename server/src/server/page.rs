//! The status page served at `GET /`: stores, fact counts, durability, and a live tail
//! of committed facts over SSE (`/v1/events`). Plain HTML and JavaScript, no assets.
//! With a token, open it as `/?token=...`; the page passes the token on. `?max_live=N`
//! stops the live tail after N facts (headless browsers wait for the network to idle).

/// The page.
pub(crate) const HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>igniter-ledger</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .5em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
#tail li { font-family: ui-monospace, monospace; }
.muted { color: #777; }
</style>
</head>
<body>
<h1>igniter-ledger</h1>
<p id="summary" class="muted">loading…</p>
<h2>Stores</h2>
<table><thead><tr><th>store</th><th>facts</th></tr></thead><tbody id="stores"></tbody></table>
<h2>Live tail</h2>
<p id="live" class="muted">connecting…</p>
<ol id="tail"></ol>
<script>
const params = new URLSearchParams(location.search);
const token = params.get("token");
const maxLive = Number(params.get("max_live") || 0);
let live = 0;
const q = (path, extra) => {
  const p = new URLSearchParams(extra || {});
  if (token) p.set("token", token);
  const s = p.toString();
  return s ? path + "?" + s : path;
};
const counts = {};
function renderStores() {
  const body = document.getElementById("stores");
  body.innerHTML = "";
  Object.keys(counts).sort().forEach(name => {
    const tr = document.createElement("tr");
    const a = document.createElement("td"); a.textContent = name;
    const b = document.createElement("td"); b.textContent = counts[name];
    b.className = "count"; tr.appendChild(a); tr.appendChild(b); body.appendChild(tr);
  });
}
async function load() {
  const info = await (await fetch(q("/v1/ledger"))).json();
  const st = await (await fetch(q("/v1/status"))).json();
  info.stores.forEach(s => { counts[s.name] = s.facts; });
  renderStores();
  const total = document.getElementById("summary");
  total.innerHTML = "";
  total.append("facts: ");
  const n = document.createElement("b"); n.id = "fact-count"; n.textContent = info.fact_count;
  total.append(n, " · durability: " + info.durability + " · " + (info.path || "in memory") +
    " · status: " + st.status + " · uptime " + Math.round(st.uptime_ms / 1000) + " s");
  follow(info.head);
}
function follow(head) {
  const es = new EventSource(q("/v1/events", { cursor: head }));
  es.onopen = () => { document.getElementById("live").textContent = "live (after sequence " + head + ")"; };
  es.addEventListener("fact_committed", ev => {
    const e = JSON.parse(ev.data);
    const li = document.createElement("li");
    li.className = "fact";
    li.textContent = "#" + e.cursor.sequence + " " + e.store + "/" + e.key + " " + e.fact_id;
    const tail = document.getElementById("tail");
    tail.insertBefore(li, tail.firstChild);
    while (tail.children.length > 100) tail.removeChild(tail.lastChild);
    counts[e.store] = (counts[e.store] || 0) + 1;
    renderStores();
    const n = document.getElementById("fact-count");
    if (n) n.textContent = Number(n.textContent) + 1;
    live += 1;
    if (maxLive && live >= maxLive) {
      es.close();
      document.getElementById("live").textContent = "stopped after " + live + " live fact(s)";
    }
  });
  es.onerror = () => { document.getElementById("live").textContent = "disconnected; retrying…"; };
}
load().catch(e => { document.getElementById("summary").textContent = "error: " + e; });
</script>
</body>
</html>
"##;
