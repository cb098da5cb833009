// The live query tester (/search): while the user types, ask /search.json and redraw the count,
// the chart, the hits, the error and the watchlist entry, without reloading the page. The page
// is whole without this file. Every string from the server goes in as text (textContent, DOM
// nodes); the only markup taken is the snippet's <strong>, rebuilt element by element.
"use strict";

(function () {
  const form = document.getElementById("tester");
  if (!form) {
    return;
  }
  const SVG = "http://www.w3.org/2000/svg";
  const DELAY = 300; // ms after the last keystroke
  // The chart's geometry: as monitor/web/search.py draws it.
  const WIDTH = 560, HEIGHT = 96, BARS_TOP = 14, BARS_HEIGHT = 60, MAX_LABELS = 7;

  const $ = (id) => document.getElementById(id);
  const query = $("q"), days = $("days");
  let timer = null;
  let asked = 0; // the number of the latest request: older answers are dropped
  let pending = null;

  function element(name, text, className) {
    const node = document.createElement(name);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function svg(name, attributes, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function plural(n, one, many) {
    return n === 1 ? one : many;
  }

  function round(x) {
    return Math.round(x * 100) / 100;
  }

  function drawChart(perDay) {
    const chart = $("chart");
    chart.replaceChildren();
    if (!perDay.length) return;
    const top = Math.max(...perDay.map((d) => d[1])) || 1;
    const slot = WIDTH / perDay.length;
    const every = Math.ceil(perDay.length / MAX_LABELS);
    perDay.forEach(([day, n], i) => {
      const height = Math.max((n / top) * BARS_HEIGHT, n ? 1 : 0);
      const y = round(BARS_TOP + BARS_HEIGHT - height);
      const middle = round(i * slot + slot / 2);
      const group = svg("g", {});
      group.append(svg("title", {}, `${day}: ${n}`));
      group.append(svg("rect", {x: round(i * slot + slot * 0.1), y: y, width: round(slot * 0.8),
                                height: round(height), fill: "#3465a4"}));
      if (slot >= 14 && n) {
        group.append(svg("text", {x: middle, y: y - 3, "text-anchor": "middle", "font-size": 10,
                                  "font-family": "sans-serif"}, String(n)));
      }
      if ((perDay.length - 1 - i) % every === 0) {
        const [, month, date] = day.split("-").map(Number);
        group.append(svg("text", {x: middle, y: HEIGHT - 4, "text-anchor": "middle", "font-size": 10,
                                  "font-family": "sans-serif", fill: "#555"}, `${date}/${month}`));
      }
      chart.append(group);
    });
    const base = BARS_TOP + BARS_HEIGHT;
    chart.append(svg("line", {x1: 0, x2: WIDTH, y1: base, y2: base, stroke: "#888"}));
  }

  // The snippet as text with its <strong> words: parsed in an inert document (no scripts run,
  // nothing loads), then only text and <strong> taken over, as text.
  function snippet(html) {
    const paragraph = element("p", undefined, "hit-snippet");
    const parsed = new DOMParser().parseFromString(html, "text/html");
    for (const node of parsed.body.childNodes) {
      if (node.nodeName === "STRONG") paragraph.append(element("strong", node.textContent));
      else paragraph.append(document.createTextNode(node.textContent));
    }
    return paragraph;
  }

  function drawHits(hits) {
    const list = $("hits");
    list.replaceChildren();
    for (const hit of hits) {
      const item = element("li");
      let title;
      if (/^https?:\/\//i.test(hit.url)) {
        title = element("a", hit.title, "hit-title");
        title.href = hit.url;
        title.rel = "noreferrer noopener";
      } else {
        title = element("span", hit.title, "hit-title");
      }
      item.append(title, " ", element("small", `${hit.source} · ${hit.time}`, "hit-meta"),
                  snippet(hit.snippet_html));
      list.append(item);
    }
  }

  function draw(answer) {
    const blank = !answer.query.trim();
    const error = answer.error;
    $("status").textContent = "";
    $("hint").hidden = !blank;
    $("error").hidden = !error;
    $("results").hidden = blank || Boolean(error);
    $("copy-section").hidden = blank || Boolean(error);
    if (error) {
      $("error-message").textContent = `${error.message} at column ${error.column}`;
      $("error-query").textContent = `${error.query_line}\n${error.caret_line}`;
      return;
    }
    $("count-number").textContent = String(answer.count);
    $("count-text").textContent = `${plural(answer.count, "article", "articles")} of the last ` +
      `${answer.days} ${plural(answer.days, "day", "days")} matched`;
    drawChart(answer.per_day);
    drawHits(answer.hits);
    $("more").hidden = answer.count <= answer.hits.length;
    $("watchlist-yaml").textContent = answer.watchlist_yaml;
    $("copy-note").textContent = "";
  }

  async function refresh() {
    if (!days.checkValidity()) {
      $("status").textContent = `Days: from ${days.min} to ${days.max}.`;
      return;
    }
    const number = ++asked;
    if (pending) pending.abort();
    pending = new AbortController();
    const parameters = new URLSearchParams(new FormData(form));
    try {
      const response = await fetch(`/search.json?${parameters}`, {
        signal: pending.signal, headers: {Accept: "application/json"}, credentials: "same-origin",
      });
      if (!response.ok) {
        throw new Error((await response.text()).trim() || `HTTP ${response.status}`);
      }
      const answer = await response.json();
      if (number === asked) draw(answer);
    } catch (error) {
      if (error.name !== "AbortError" && number === asked) {
        $("status").textContent = `The monitor did not answer: ${error.message}`;
      }
    }
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, DELAY);
  }

  for (const input of [query, days, $("name")]) {
    input.addEventListener("input", later);
  }

  const copy = $("copy");
  copy.hidden = false;
  copy.addEventListener("click", async () => {
    const entry = $("watchlist-yaml");
    try {
      await navigator.clipboard.writeText(entry.textContent);
      $("copy-note").textContent = "Copied.";
    } catch (error) {
      // No clipboard (an insecure origin, a refused permission): select it for Ctrl+C.
      window.getSelection().selectAllChildren(entry);
      $("copy-note").textContent = "Selected: press Ctrl+C to copy.";
    }
  });
})();
