// Live pages: the page's subscription (json in #live-subscription) goes over a websocket to
// /ws/live/; what changed comes back as rows rendered by the server, swapped in by id. If the
// socket drops, the page asks /live/ over HTTP every few seconds and tries the socket again.
(function () {
  "use strict";
  const source = document.getElementById("live-subscription");
  if (!source) return;
  const sub = JSON.parse(source.textContent);
  sub.query = window.location.search.slice(1);
  const status = document.getElementById("live-status");
  let since = null;
  let pollTimer = null;
  let retryDelay = 1000;

  function say(text) { status.hidden = false; status.textContent = text; }

  function fromHtml(html) {
    const body = document.createElement("tbody");
    body.innerHTML = html.trim();
    return body.firstElementChild;
  }

  function upsertRows(container, rows, prependNew) {
    if (!container) return;
    rows.forEach(function (row) {
      const fresh = fromHtml(row.html);
      const existing = container.querySelector('[data-run-id="' + row.id + '"]');
      if (existing) {
        existing.replaceWith(fresh);
      } else if (prependNew) {
        const empty = container.querySelector("tr.empty");
        if (empty) empty.remove();
        container.prepend(fresh);
        const limit = Number(container.dataset.liveLimit || 0);
        while (limit && container.rows.length > limit) container.deleteRow(-1);
      } else {
        return;
      }
      fresh.classList.add("flash");
    });
  }

  function apply(data) {
    if (data.error) { say("Live updates stopped: " + data.error); return; }
    if (data.runs) {
      document.querySelectorAll('[data-live-rows="runs"] tbody').forEach(function (body) {
        upsertRows(body, data.runs, body.dataset.liveNew === "yes");
      });
    }
    if (data.run) {
      const badge = document.querySelector("[data-live-state]");
      if (badge) badge.innerHTML = data.run.state;
      const message = document.querySelector("[data-live-message]");
      if (message) message.textContent = data.run.message || "";
    }
    if (data.task_runs) upsertRows(document.querySelector('[data-live-rows="task_runs"]'), data.task_runs, true);
    if (data.subflows) upsertRows(document.querySelector('[data-live-rows="subflows"]'), data.subflows, true);
    if (data.logs) {
      const body = document.querySelector("[data-live-logs]");
      const empty = document.querySelector("[data-live-logs-empty]");
      if (empty) empty.remove();
      data.logs.forEach(function (html) { if (body) body.appendChild(fromHtml(html)); });
    }
    if (data.log_after) sub.log_after = data.log_after;
    if (data.since) since = data.since;
  }

  function poll() {
    const params = new URLSearchParams({page: sub.page, query: sub.query});
    if (sub.id) params.set("id", sub.id);
    if (sub.log_after) params.set("log_after", sub.log_after);
    if (since) params.set("since", since);
    fetch("/live/?" + params.toString(), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(apply)
      .catch(function () { say("Live updates: the server does not answer; trying again."); });
  }

  function startPolling() {
    if (pollTimer) return;
    say("Live updates: reconnecting; checking every 3 s meanwhile.");
    since = since || new Date(Date.now() - 5000).toISOString();
    pollTimer = setInterval(poll, 3000);
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + "/ws/live/");
    socket.onopen = function () {
      retryDelay = 1000;
      if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
      say("Live: updates appear as they happen.");
      socket.send(JSON.stringify(sub));
    };
    socket.onmessage = function (event) { apply(JSON.parse(event.data)); };
    socket.onclose = function () {
      startPolling();
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    };
  }

  window.runwayLive = {poll: poll, subscription: sub};
  connect();
})();
