# frozen_string_literal: true

module Igniter
  module Ledger
    # The page `GET /` serves: the server's status (from /v1/status, refreshed) and a
    # live tail of committed facts (from the /v1/events SSE stream). No external assets.
    module StatusPage
      HTML = <<~HTML
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>igniter-ledger</title>
        <style>
          body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
          h1 { font-size: 1.4em; margin: 0 0 .5em; }
          table { border-collapse: collapse; margin-bottom: 1.5em; }
          td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
          th { background: #f3f3f3; }
          #tail li { font-family: ui-monospace, monospace; }
          .muted { color: #888; }
        </style>
        </head>
        <body>
        <h1>igniter-ledger</h1>
        <table id="status">
          <tr><th>status</th><td id="s-status" class="muted">loading…</td></tr>
          <tr><th>facts</th><td id="s-facts">–</td></tr>
          <tr><th>durability</th><td id="s-durability">–</td></tr>
          <tr><th>backend</th><td id="s-backend">–</td></tr>
          <tr><th>connections</th><td id="s-connections">–</td></tr>
          <tr><th>stores</th><td id="s-stores">–</td></tr>
        </table>
        <h2>Live tail</h2>
        <ol id="tail"></ol>
        <script>
        const token = new URLSearchParams(location.search).get("token");
        const q = token ? "?token=" + encodeURIComponent(token) : "";
        const headers = token ? { "Authorization": "Bearer " + token } : {};
        const stores = new Set();
        function set(id, v) { document.getElementById(id).textContent = v == null ? "–" : String(v); }
        async function refresh() {
          try {
            const r = await fetch("/v1/status", { headers });
            const s = await r.json();
            const srv = s.server || {};
            set("s-status", s.status || srv.status);
            document.getElementById("s-status").className = "";
            set("s-facts", srv.fact_count);
            set("s-durability", srv.durability);
            set("s-backend", srv.backend);
            set("s-connections", srv.active_connections);
          } catch (e) { set("s-status", "unreachable"); }
        }
        const es = new EventSource("/v1/events" + q);
        es.addEventListener("fact_committed", (ev) => {
          const d = JSON.parse(ev.data);
          stores.add(d.store);
          set("s-stores", Array.from(stores).join(", "));
          const li = document.createElement("li");
          li.className = "fact";
          li.textContent = "#" + ev.lastEventId + " " + d.store + "/" + d.key + " " + d.fact_id;
          document.getElementById("tail").appendChild(li);
          refresh();
        });
        refresh();
        setInterval(refresh, 5000);
        </script>
        </body>
        </html>
      HTML
    end
  end
end
