// frps dashboard: reads frp's dashboard API (/api/serverinfo, /api/proxy/{type},
// /api/traffic/{name}, DELETE /api/proxies?status=offline) and draws the page and the
// per-proxy traffic chart (SVG) itself; no framework, no build step.
"use strict";

(function () {
  const TYPES = ["tcp", "udp", "http", "https", "tcpmux", "stcp", "sudp", "xtcp"];
  const REFRESH_MS = 10000;
  const SVG = "http://www.w3.org/2000/svg";
  let serverInfo = null;
  let currentType = "tcp";
  const expanded = new Set();

  // -- helpers ------------------------------------------------------------------------------
  // The API lives next to /static/; built from origin and path only, since a page opened as
  // http://user:pass@host/ may not fetch URLs that carry credentials.
  const API = new URL("../api/", location.origin + location.pathname).href;

  function api(path, options) {
    return fetch(API + path, Object.assign({ credentials: "same-origin" }, options)).then((r) => {
      if (!r.ok) throw new Error(path + ": HTTP " + r.status);
      return r.text();
    }).then((text) => (text ? JSON.parse(text) : null));
  }

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    return node;
  }

  function setState(text, error) {
    const state = document.getElementById("state");
    state.textContent = text;
    state.classList.toggle("error", Boolean(error));
  }

  // -- server -------------------------------------------------------------------------------
  function showServer(info) {
    serverInfo = info;
    document.getElementById("version").textContent = "v" + info.version;
    const counts = info.proxyTypeCount || {};
    const proxies = Object.values(counts).reduce((a, b) => a + b, 0);
    document.getElementById("clientCounts").textContent = info.clientCounts;
    document.getElementById("proxyCount").textContent = proxies;
    document.getElementById("curConns").textContent = info.curConns;
    document.getElementById("totalTrafficIn").textContent = bytes(info.totalTrafficIn);
    document.getElementById("totalTrafficOut").textContent = bytes(info.totalTrafficOut);
    const rows = [
      ["Bind port", info.bindPort],
      ["KCP bind port", info.kcpBindPort || null],
      ["QUIC bind port", info.quicBindPort || null],
      ["HTTP port", info.vhostHTTPPort || null],
      ["HTTPS port", info.vhostHTTPSPort || null],
      ["TCPMux HTTP CONNECT port", info.tcpmuxHTTPConnectPort || null],
      ["Subdomain host", info.subdomainHost || null],
      ["Max pool count", info.maxPoolCount],
      ["Max ports per client", info.maxPortsPerClient],
      ["Allowed ports", info.allowPortsStr || null],
      ["TLS only", info.tlsForce ? "yes" : null],
      ["Heartbeat timeout", info.heartbeatTimeout],
    ];
    const body = document.querySelector("#serverinfo tbody");
    body.replaceChildren(...rows.filter((row) => row[1] !== null)
      .map(([name, value]) => el("tr", {}, [el("th", { text: name }), el("td", { text: String(value) })])));
    showTabs(counts);
  }

  function showTabs(counts) {
    const nav = document.getElementById("types");
    nav.replaceChildren(...TYPES.map((type) => {
      const button = el("button", { type: "button", role: "tab", "data-type": type,
        "aria-selected": String(type === currentType), text: type.toUpperCase() + " (" + (counts[type] || 0) + ")" });
      button.addEventListener("click", () => { currentType = type; showTabs(counts); loadProxies(); });
      return button;
    }));
  }

  // -- proxies ------------------------------------------------------------------------------
  function where(proxy) {
    const conf = proxy.conf;
    if (!conf) return "–";
    if (conf.remotePort !== undefined) return String(conf.remotePort);
    const names = (conf.customDomains || []).slice();
    if (conf.subdomain) names.push(conf.subdomain + (serverInfo && serverInfo.subdomainHost ? "." + serverInfo.subdomainHost : ""));
    return names.join(", ") || "–";
  }

  function details(proxy) {
    const conf = proxy.conf || {};
    const transport = conf.transport || {};
    const rows = [
      ["Type", currentType],
      ["Locations", conf.locations && conf.locations.join(", ")],
      ["Host header rewrite", conf.hostHeaderRewrite],
      ["Multiplexer", conf.multiplexer],
      ["Route by HTTP user", conf.routeByHTTPUser],
      ["Group", conf.loadBalancer && conf.loadBalancer.group],
      ["Encryption", proxy.conf ? (transport.useEncryption ? "yes" : "no") : null],
      ["Compression", proxy.conf ? (transport.useCompression ? "yes" : "no") : null],
      ["Bandwidth limit", transport.bandwidthLimit ? transport.bandwidthLimit + " (" + transport.bandwidthLimitMode + ")" : null],
      ["Last start", proxy.lastStartTime],
      ["Last close", proxy.lastCloseTime],
    ];
    return el("dl", {}, rows.filter((row) => row[1]).flatMap(([name, value]) =>
      [el("dt", { text: name }), el("dd", { text: String(value) })]));
  }

  function proxyRows(proxy) {
    const row = el("tr", { class: "proxy " + proxy.status, "data-name": proxy.name }, [
      el("td", { text: proxy.name }),
      el("td", { text: where(proxy) }),
      el("td", { class: "num", text: String(proxy.curConns) }),
      el("td", { class: "num", text: bytes(proxy.todayTrafficIn) }),
      el("td", { class: "num", text: bytes(proxy.todayTrafficOut) }),
      el("td", { text: proxy.clientVersion || "" }),
      el("td", {}, [el("span", { class: "status", text: proxy.status })]),
    ]);
    const chart = el("div", { class: "chart-box" });
    const detail = el("tr", { class: "detail" }, [el("td", { colspan: "7" }, [
      el("div", { class: "detail-grid" }, [details(proxy), chart])])]);
    detail.hidden = !expanded.has(proxy.name);
    if (!detail.hidden) loadTraffic(proxy.name, chart);
    row.addEventListener("click", () => {
      detail.hidden = !detail.hidden;
      if (detail.hidden) expanded.delete(proxy.name);
      else { expanded.add(proxy.name); loadTraffic(proxy.name, chart); }
    });
    return [row, detail];
  }

  function loadProxies() {
    const type = currentType;
    return api("proxy/" + encodeURIComponent(type)).then((data) => {
      if (type !== currentType) return;
      const proxies = data.proxies || [];
      document.querySelector("#proxies tbody").replaceChildren(...proxies.flatMap(proxyRows));
      document.getElementById("empty").hidden = proxies.length > 0;
    });
  }

  // -- the traffic chart --------------------------------------------------------------------
  function loadTraffic(name, box) {
    api("traffic/" + encodeURIComponent(name)).then((data) => box.replaceChildren(trafficChart(data)))
      .catch((error) => box.replaceChildren(el("p", { class: "empty", text: String(error.message) })));
  }

  // The smallest 1, 2 or 5 times a power of ten (at least 1) that is >= value: a grid step.
  function niceStep(value) {
    if (value <= 1) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= value);
  }

  // Grouped bars, oldest day on the left; the API gives today first.
  function trafficChart(data) {
    const days = data.trafficIn.length;
    const width = 420, height = 180, left = 64, bottom = 22, top = 10;
    const inner = { w: width - left - 8, h: height - top - bottom };
    const max = 4 * niceStep(Math.max(...data.trafficIn, ...data.trafficOut) / 4);
    const chart = svg("svg", { class: "chart", width, height, viewBox: "0 0 " + width + " " + height,
      role: "img", "aria-label": "Traffic of " + data.name + ", last " + days + " days" });
    for (let i = 0; i <= 4; i++) {
      const y = top + inner.h - (inner.h * i) / 4;
      chart.append(svg("line", { x1: left, x2: width - 8, y1: y, y2: y, stroke: "#e4e7eb" }));
      const label = svg("text", { x: left - 6, y: y + 3, "text-anchor": "end" });
      label.textContent = bytes((max * i) / 4);
      chart.append(label);
    }
    const slot = inner.w / days, bar = Math.max(2, slot * 0.35);
    for (let i = 0; i < days; i++) {
      const back = days - 1 - i;  // days ago
      const x = left + i * slot + (slot - 2 * bar) / 2;
      [["in", data.trafficIn[back]], ["out", data.trafficOut[back]]].forEach(([kind, value], k) => {
        const h = (inner.h * value) / max;
        const rect = svg("rect", { class: kind, x: x + k * bar, y: top + inner.h - h, width: bar - 1, height: h });
        const title = svg("title");
        title.textContent = kind + ": " + bytes(value);
        rect.append(title);
        chart.append(rect);
      });
      const date = new Date(Date.now() - back * 86400000);
      const label = svg("text", { x: left + i * slot + slot / 2, y: height - 6, "text-anchor": "middle" });
      label.textContent = String(date.getMonth() + 1).padStart(2, "0") + "-" + String(date.getDate()).padStart(2, "0");
      chart.append(label);
    }
    const legend = el("div", { class: "legend" }, [
      el("i", { style: "background: var(--in)" }), "in",
      el("i", { style: "background: var(--out)" }), "out"]);
    return el("div", {}, [chart, legend]);
  }

  // -- refresh ------------------------------------------------------------------------------
  function refresh() {
    return api("serverinfo").then(showServer).then(loadProxies)
      .then(() => setState("updated " + new Date().toLocaleTimeString()))
      .catch((error) => setState(String(error.message), true));
  }

  // A link to one proxy: #type/name opens its type's tab with its details and chart shown.
  function followHash() {
    const [type, name] = decodeURIComponent(location.hash.slice(1)).split("/");
    if (TYPES.includes(type)) currentType = type;
    if (name) expanded.add(name);
  }

  followHash();
  document.getElementById("clearOffline").addEventListener("click", () => {
    api("proxies?status=offline", { method: "DELETE" }).then(refresh)
      .catch((error) => setState(String(error.message), true));
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
