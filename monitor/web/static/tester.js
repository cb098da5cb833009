// The live query tester (/search): while the user types, ask /search.json and redraw the count,
// the chart, the hits, the error and the watchlist entry, without reloading the page. The page
// is whole without this file. Every string from the server goes in as text (textContent, DOM
// nodes); the only markup taken is the snippet's <mark>, rebuilt element by element.
"use strict";

(function () {
  const form = document.getElementById("tester");
  if (!form) {
    return;
  }
  const SVG = "http://www.w3.org/2000/svg";
  const DELAY = 300; // ms after the last keystroke
  const WIDTH = 560, HEIGHT = 80; // monitor/web/search.py's CHART_WIDTH, CHART_HEIGHT

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

  function round1(x) {
    return Math.round(x * 10) / 10;
  }

  // As monitor.web.charts.bar_chart draws it: one bar per day, the first and last day below.
  function drawChart(perDay) {
    const chart = svg("svg", {class: "bars", role: "img", width: WIDTH, height: HEIGHT,
                              viewBox: `0 0 ${WIDTH} ${HEIGHT}`});
    const counts = perDay.map((d) => d[1]);
    const top = Math.max(0, ...counts) || 1;
    const bars = HEIGHT - 14;
    const slot = WIDTH / Math.max(perDay.length, 1);
    chart.append(svg("title", {}, `${counts.reduce((a, b) => a + b, 0)} in ${perDay.length} days`));
    chart.append(svg("line", {x1: 0, y1: bars, x2: WIDTH, y2: bars, class: "baseline"}));
    perDay.forEach(([day, n], i) => {
      const bar = n ? round1((bars * n) / top) : 0;
      const rect = svg("rect", {x: round1(i * slot + 1), y: round1(bars - bar),
                                width: round1(Math.max(slot - 2, 1)), height: bar, class: "bar"});
      rect.append(svg("title", {}, `${day}: ${n}`));
      chart.append(rect);
    });
    if (perDay.length) {
      chart.append(svg("text", {x: 0, y: HEIGHT - 2, class: "axis"}, perDay[0][0]));
      chart.append(svg("text", {x: WIDTH, y: HEIGHT - 2, "text-anchor": "end", class: "axis"},
                       perDay[perDay.length - 1][0]));
    }
    $("chart-box").querySelector("svg").replaceWith(chart);
  }

  // The snippet as text with its <mark> words: parsed in an inert document (no scripts run,
  // nothing loads), then only text and <mark> taken over, as text.
  function snippet(html) {
    const paragraph = element("p", undefined, "snippet hit-snippet");
    const parsed = new DOMParser().parseFromString(html, "text/html");
    for (const node of parsed.body.childNodes) {
      if (node.nodeName === "MARK") paragraph.append(element("mark", node.textContent));
      else paragraph.append(document.createTextNode(node.textContent));
    }
    return paragraph;
  }

  function drawHits(hits) {
    const list = $("hits");
    list.replaceChildren();
    for (const hit of hits) {
      const item = element("li", undefined, "story");
      const headline = element("div", undefined, "headline");
      let title;
      if (/^https?:\/\//i.test(hit.url)) {
        title = element("a", hit.title, "hit-title");
        title.href = hit.url;
        title.rel = "noreferrer noopener";
      } else {
        title = element("span", hit.title, "hit-title");
      }
      headline.append(title);
      item.append(headline, element("div", `${hit.source} · ${hit.time}`, "meta hit-meta"),
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
