// The wallboard's live part: one EventSource for the snapshots and pings, and a 250 ms
// tick that counts waits and ages on from the server's clock between snapshots.
//
// Every word comes from the labels block the server rendered from the catalogues, and
// everything shown is set with textContent: member names come from the PBX, not from us.
(() => {
  "use strict";

  // NENA-STA-020.1 wants calls answered within 15 s; 10 s leaves time to act before it.
  const WARN_SECONDS = 10;
  const BREACH_SECONDS = 15;
  const TARGET_15 = 0.9; // the same standard's share for 15 s: the sparkline's line
  // The server pings every 5 s: more than two missed pings is not a slow network.
  const STALE_SECONDS = 12;
  // Silent that long, the connection is dead though the browser has not noticed (a TV
  // whose wifi dropped keeps a half-open TCP connection for minutes): open a new one.
  const REOPEN_SECONDS = 30;
  const TICK_MS = 250;
  // Clock estimates are kept this long: enough pings that one quick one is among them.
  const OFFSET_WINDOW_MS = 30000;
  const RETRY_FIRST_MS = 1000;
  const RETRY_LAST_MS = 30000;
  const STATES = ["available", "ringing", "in_call", "paused", "unavailable"];
  // Across queues one person can be listed once per queue: a call in one of them
  // makes them busy for all, so the busiest state is the one shown.
  const BUSY = { in_call: 5, ringing: 4, available: 3, paused: 2, unavailable: 1 };
  const SVG = "http://www.w3.org/2000/svg";
  const SPARK_W = 240;
  const SPARK_H = 80;
  const SPARK_PAD = 4;
  const BUCKET_SECONDS = 300;

  const labels = JSON.parse(document.getElementById("labels").textContent);
  const lang = document.documentElement.lang;
  const eventsUrl = document.body.dataset.events;

  const integer = new Intl.NumberFormat(lang, { maximumFractionDigits: 0 });
  const twoDigits = new Intl.NumberFormat(lang, { minimumIntegerDigits: 2, useGrouping: false });
  // Rounded down: a share shown as "90%" must not be 89.96% missing a 90% target.
  const percent = new Intl.NumberFormat(lang, {
    style: "percent",
    maximumFractionDigits: 1,
    roundingMode: "floor",
  });
  const clockFormat = new Intl.DateTimeFormat(lang, {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  });
  const hourMinute = new Intl.DateTimeFormat(lang, {
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });
  const dayFormat = new Intl.DateTimeFormat(lang, {
    weekday: "long",
    day: "numeric",
    month: "long",
    year: "numeric",
  });

  const byId = (id) => document.getElementById(id);

  function text(key, fields) {
    const template = labels[key];
    if (template === undefined) {
      console.error(key); // a catalogue entry is missing: the tests fail on this
      return key;
    }
    if (!fields) return template;
    return template.replace(/\{([a-z_]+)\}/g, (whole, name) =>
      name in fields ? String(fields[name]) : whole,
    );
  }

  function put(element, value) {
    // A TV's browser is slow: only touch what changed.
    if (element.textContent !== value) element.textContent = value;
  }

  function count(value) {
    return typeof value === "number" ? integer.format(value) : text("wallboard.none");
  }

  function share(value) {
    return typeof value === "number" ? percent.format(value) : text("wallboard.none");
  }

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return text("wallboard.seconds", { n: integer.format(s) });
    if (s < 3600) {
      return text("wallboard.minutes_seconds", {
        m: integer.format(Math.floor(s / 60)),
        s: twoDigits.format(s % 60),
      });
    }
    return text("wallboard.hours_minutes", {
      h: integer.format(Math.floor(s / 3600)),
      m: twoDigits.format(Math.floor(s / 60) % 60),
    });
  }

  function element(tag, className, content) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (content !== undefined) node.textContent = content;
    return node;
  }

  // ---------------------------------------------------------------- server clock

  // Each message's "at" against the browser's monotonic clock: transit only makes a
  // message older than it looks, so the largest estimate is the closest one. The
  // monotonic clock, unlike Date.now(), does not jump when the TV sets its time.
  const estimates = [];
  function observe(at) {
    if (typeof at !== "number") return;
    const now = performance.now();
    estimates.push([now, at - now / 1000]);
    while (estimates[0][0] < now - OFFSET_WINDOW_MS) estimates.shift();
  }
  function serverNow() {
    if (estimates.length === 0) return Date.now() / 1000;
    let base = -Infinity;
    for (const [, offset] of estimates) base = Math.max(base, offset);
    return performance.now() / 1000 + base;
  }

  // ------------------------------------------------------------------ the stream

  const loadedAt = performance.now();
  let snapshot = null;
  let lastMessageAt = null; // performance.now() of the last snapshot or ping
  let broken = false; // the stream errored and nothing has arrived since
  let source = null;
  let openedAt = loadedAt;
  let retryMs = RETRY_FIRST_MS;
  let retryTimer = null;

  function received(at) {
    observe(at);
    lastMessageAt = performance.now();
    broken = false;
    retryMs = RETRY_FIRST_MS;
  }

  function parse(event) {
    try {
      return JSON.parse(event.data);
    } catch (error) {
      console.error(error);
      return null;
    }
  }

  function onSnapshot(event) {
    const data = parse(event);
    if (!data) return;
    received(data.at);
    snapshot = data;
    render();
    tick();
  }

  function onPing(event) {
    const data = parse(event);
    if (!data) return;
    received(data.at);
    tick();
  }

  function onError() {
    broken = true;
    // A network error leaves the EventSource reconnecting by itself; an HTTP error
    // (503 when too many boards are open, a proxy's 502) closes it for good.
    if (source && source.readyState === EventSource.CLOSED) reopenLater();
    tick();
  }

  function open() {
    retryTimer = null;
    if (source) source.close();
    openedAt = performance.now();
    source = new EventSource(eventsUrl);
    source.addEventListener("snapshot", onSnapshot);
    source.addEventListener("ping", onPing);
    source.addEventListener("error", onError);
  }

  function reopenLater() {
    if (retryTimer !== null) return;
    retryTimer = setTimeout(open, retryMs);
    retryMs = Math.min(retryMs * 2, RETRY_LAST_MS);
  }

  // ------------------------------------------------------------------ rendering

  let memberAges = []; // [element, since] for the tick
  let waitLevel = null;

  function render() {
    const s = snapshot;
    put(
      byId("queue"),
      s.queue ? text("wallboard.queue", { queue: s.queue }) : text("wallboard.all_queues"),
    );
    put(byId("waiting"), count((s.waiting || []).length));
    put(byId("talking"), count(s.talking));
    renderToday(s.today || {});
    renderMembers(s.members || []);
    renderCallbacks(s.callbacks || {});
    renderDispatches(s.dispatches || {});
    renderSparkline(s.sparkline || []);
  }

  function renderToday(today) {
    if (today.date) {
      // Noon: the calendar day whatever the browser's time zone.
      put(byId("today-date"), dayFormat.format(new Date(`${today.date}T12:00:00`)));
    }
    for (const key of ["offered", "answered", "abandoned", "unanswered", "interrupted"]) {
      put(byId(key), count(today[key]));
    }
    const stages = [];
    for (const [stage, n] of Object.entries(today.abandoned_by_stage || {})) {
      const name = labels[`stage.${stage}`] ?? stage;
      stages.push(element("li", "", text("wallboard.stage_count", { n: count(n), stage: name })));
    }
    byId("stages").replaceChildren(...stages);
    const within = today.within || {};
    for (const seconds of ["10", "15", "20"]) put(byId(`within-${seconds}`), share(within[seconds]));
    const rows = (today.standards || []).map((standard) => {
      const verdict =
        standard.met === null || standard.met === undefined
          ? "none"
          : standard.met
            ? "met"
            : "not_met";
      const row = element("li", "standard");
      row.dataset.verdict = verdict;
      row.append(
        element(
          "span",
          "standard-name",
          text("wallboard.standard", {
            standard: standard.standard,
            target: share(standard.target),
            seconds: count(standard.seconds),
          }),
        ),
        element("span", "standard-share num", share(standard.share)),
        element(
          "span",
          "verdict",
          text(verdict === "none" ? "wallboard.no_calls" : `wallboard.${verdict}`),
        ),
      );
      return row;
    });
    byId("standards").replaceChildren(...rows);
  }

  function renderMembers(members) {
    const people = new Map();
    for (const member of members) {
      const state = STATES.includes(member.state) ? member.state : "unavailable";
      const known = people.get(member.name);
      if (!known || BUSY[state] > BUSY[known.state]) people.set(member.name, { ...member, state });
    }
    const groups = Object.fromEntries(STATES.map((state) => [state, []]));
    for (const person of people.values()) groups[person.state].push(person);
    memberAges = [];
    for (const state of STATES) {
      const list = groups[state].sort((a, b) => a.name.localeCompare(b.name, lang));
      put(byId(`count-${state}`), count(list.length));
      const items = list.map((person) => {
        const item = element("li", "member");
        item.append(element("span", "member-name", person.name));
        if (person.reason) item.append(element("span", "member-reason", person.reason));
        if (typeof person.since === "number") {
          const age = element("span", "member-age");
          memberAges.push([age, person.since]);
          item.append(age);
        }
        return item;
      });
      if (items.length === 0) items.push(element("li", "member-none", text("wallboard.member_none")));
      byId(`members-${state}`).replaceChildren(...items);
    }
  }

  function renderCallbacks(callbacks) {
    put(byId("callbacks"), count(callbacks.owed));
  }

  function renderDispatches(dispatches) {
    const rows = Object.entries(dispatches)
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([code, n]) => {
        const row = element("li", "dispatch");
        // A center's own agency codes have no catalogue entry: shown as configured.
        row.append(
          element("span", "agency", labels[`agency.${code}`] ?? code),
          element("span", "num", count(n)),
        );
        return row;
      });
    if (rows.length === 0) rows.push(element("li", "note", text("wallboard.dispatches_none")));
    byId("dispatches").replaceChildren(...rows);
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    return node;
  }

  function sparkY(value) {
    return SPARK_PAD + (1 - value) * (SPARK_H - 2 * SPARK_PAD);
  }

  function renderSparkline(buckets) {
    const chart = svg("svg", {
      viewBox: `0 0 ${SPARK_W} ${SPARK_H}`,
      preserveAspectRatio: "none",
      class: "sparkline",
      id: "sparkline",
      role: "img",
      "aria-label": text("wallboard.sparkline"),
    });
    const step = SPARK_W / Math.max(1, buckets.length);
    const busiest = Math.max(1, ...buckets.map((b) => b.offered || 0));
    buckets.forEach((bucket, n) => {
      if (!bucket.offered) return;
      // Volume behind the line: a 0% from one call reads differently from one from twenty.
      const height = (bucket.offered / busiest) * (SPARK_H - 2 * SPARK_PAD) * 0.5;
      chart.append(
        svg("rect", {
          class: "spark-volume",
          x: (n * step + step * 0.15).toFixed(2),
          y: (SPARK_H - height).toFixed(2),
          width: (step * 0.7).toFixed(2),
          height: height.toFixed(2),
        }),
      );
    });
    const target = sparkY(TARGET_15).toFixed(2);
    chart.append(
      svg("line", {
        class: "spark-target-line",
        x1: 0,
        x2: SPARK_W,
        y1: target,
        y2: target,
        "vector-effect": "non-scaling-stroke",
      }),
    );
    // A bucket with no calls has no share: the line breaks there instead of diving to 0.
    let d = "";
    let previous = false;
    buckets.forEach((bucket, n) => {
      const value = bucket.share_15;
      if (typeof value !== "number") {
        previous = false;
        return;
      }
      const x = n * step + step / 2;
      const y = sparkY(value);
      d += previous
        ? ` L${x.toFixed(2)} ${y.toFixed(2)}`
        : ` M${(x - step / 4).toFixed(2)} ${y.toFixed(2)} L${x.toFixed(2)} ${y.toFixed(2)}`;
      previous = true;
    });
    if (d) {
      chart.append(
        svg("path", {
          class: "spark-line",
          id: "spark-line",
          d: d.trim(),
          "vector-effect": "non-scaling-stroke",
        }),
      );
    }
    byId("spark-box").replaceChildren(chart);
    put(byId("spark-target"), text("wallboard.sparkline_target", { share: share(TARGET_15) }));
    if (buckets.length > 0) {
      put(byId("spark-from"), hourMinute.format(new Date(buckets[0].at * 1000)));
      const end = buckets[buckets.length - 1].at + BUCKET_SECONDS;
      put(byId("spark-to"), hourMinute.format(new Date(end * 1000)));
    }
  }

  // ------------------------------------------------------------------ the tick

  function staleReason(now) {
    const quietSince = lastMessageAt ?? loadedAt;
    const silent = (now - quietSince) / 1000;
    if (broken || (snapshot && silent > STALE_SECONDS)) return "wallboard.stream_lost";
    if (!snapshot) return silent > STALE_SECONDS ? "wallboard.stream_lost" : "wallboard.connecting";
    if (!snapshot.ami_up) return "wallboard.ami_down";
    return null;
  }

  function tick() {
    const monotonic = performance.now();
    const now = serverNow();
    put(byId("clock"), clockFormat.format(new Date(now * 1000)));

    const reason = staleReason(monotonic);
    document.body.classList.toggle("stale", reason !== null);
    const banner = byId("banner");
    banner.hidden = reason === null;
    if (reason !== null) {
      put(byId("banner-reason"), text(reason));
      const last = snapshot ? snapshot.last_event_at : null;
      put(
        byId("banner-age"),
        typeof last === "number"
          ? text("wallboard.last_event", { age: duration(now - last) })
          : text("wallboard.no_event"),
      );
    }
    // No message for long: the connection is dead though the browser has not noticed.
    const quiet = (monotonic - Math.max(lastMessageAt ?? 0, openedAt)) / 1000;
    if (quiet > REOPEN_SECONDS && retryTimer === null) open();

    if (!snapshot) return;
    tickWait(now);
    for (const [age, since] of memberAges) {
      put(age, text("wallboard.member_for", { age: duration(now - since) }));
    }
    const oldest = snapshot.callbacks ? snapshot.callbacks.oldest_since : null;
    put(
      byId("callbacks-oldest"),
      typeof oldest === "number"
        ? text("wallboard.callbacks_oldest", { age: duration(now - oldest) })
        : text("wallboard.callbacks_none"),
    );
  }

  function tickWait(now) {
    const waiting = snapshot.waiting || [];
    let level = "none";
    let longest = null;
    if (waiting.length > 0) {
      // Sent oldest first; the minimum costs nothing and does not depend on it.
      const since = Math.min(...waiting.map((w) => w.since));
      longest = Math.max(0, now - since);
      level = longest >= BREACH_SECONDS ? "breach" : longest >= WARN_SECONDS ? "warning" : "ok";
    }
    put(byId("longest"), longest === null ? text("wallboard.none") : duration(longest));
    if (level !== waitLevel) {
      waitLevel = level;
      byId("tile-longest").dataset.level = level;
    }
    const state = {
      none: () => text("wallboard.wait_none"),
      ok: () => text("wallboard.wait_ok", { seconds: count(WARN_SECONDS) }),
      warning: () => text("wallboard.wait_warning", { seconds: count(WARN_SECONDS) }),
      breach: () => text("wallboard.wait_breach", { seconds: count(BREACH_SECONDS) }),
    }[level]();
    put(byId("wait-state"), state);
  }

  open();
  tick();
  setInterval(tick, TICK_MS);
})();
