// A small Markdown renderer for model answers: headings, paragraphs, **bold**, *italic*,
// ~~strike~~, `code`, fenced code blocks (with a copy button), lists (nested by indent),
// block quotes, tables, rules, and links with http(s)/mailto targets.
//
// Written here instead of vendoring a library: answers only need this subset, and it is
// safe by construction — it builds DOM nodes and text nodes, never assigns innerHTML, so
// HTML in the model's text shows as text. Unfinished constructs while streaming (an open
// code fence) render as what they will become.
"use strict";

const Markdown = (() => {
  const el = (tag, cls) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    return e;
  };

  const SAFE_URL = /^(https?:\/\/|mailto:)/i;
  // Alternatives, in priority order: code span, link, bold, strike, italic (* or _).
  const INLINE = new RegExp([
    /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/.source,             // 1,2 code
    /\[([^\]\n]+)\]\(\s*<?([^\s()<>]+)>?(?:\s+"[^"]*")?\s*\)/.source,  // 3,4 link
    /\*\*(?=\S)([\s\S]*?\S)\*\*|__(?=\S)([\s\S]*?\S)__/.source, // 5,6 bold
    /~~(?=\S)([\s\S]*?\S)~~/.source,                          // 7 strike
    /\*(?=[^\s*])([\s\S]*?[^\s*])\*/.source,                  // 8 italic
    /(?<![\w])_(?=[^\s_])([\s\S]*?[^\s_])_(?![\w])/.source,   // 9 italic
    /(https?:\/\/[^\s<>()]*[^\s<>().,;:!?'"])/.source,        // 10 bare URL
  ].join("|"), "g");

  function inline(text, parent) {
    let last = 0;
    const re = new RegExp(INLINE);  // its own lastIndex: inline() recurses
    for (let m; (m = re.exec(text)) !== null;) {
      if (m.index > last) parent.append(text.slice(last, m.index));
      last = re.lastIndex;
      if (m[2] !== undefined) {
        const c = el("code");
        c.textContent = m[2].replace(/^ (.*) $/s, "$1");
        parent.append(c);
      } else if (m[3] !== undefined) {
        if (!SAFE_URL.test(m[4])) { parent.append(m[0]); continue; }  // javascript: etc.
        const a = el("a");
        a.href = m[4];
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        inline(m[3], a);
        parent.append(a);
      } else if (m[10] !== undefined) {
        const a = el("a");
        a.href = a.textContent = m[10];
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        parent.append(a);
      } else {
        const inner = m[5] ?? m[6] ?? m[7] ?? m[8] ?? m[9];
        const e = el(m[5] !== undefined || m[6] !== undefined ? "strong" : m[7] !== undefined ? "del" : "em");
        inline(inner, e);
        parent.append(e);
      }
    }
    if (last < text.length) parent.append(text.slice(last));
  }

  const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
  const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
  const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
  const ITEM = /^( *)([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const QUOTE = /^ {0,3}> ?(.*)$/;
  const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
  const startsBlock = (line, next) => FENCE.test(line) || HEADING.test(line) ||
    RULE.test(line) || ITEM.test(line) || QUOTE.test(line) ||
    (line.includes("|") && next !== undefined && TABLE_SEP.test(next));

  function cells(line) {
    return line.trim().replace(/^\|/, "").replace(/(?<!\\)\|$/, "").split(/(?<!\\)\|/)
      .map((c) => c.trim().replace(/\\\|/g, "|"));
  }

  function codeBlock(code, lang) {
    const wrap = el("div", "codeblock");
    const bar = el("div", "codebar");
    const label = el("span");
    label.textContent = lang || "code";
    const copy = el("button", "copy-code");
    copy.type = "button";
    copy.textContent = "Copy";
    copy.title = "Copy the code";
    copy.onclick = () => copyText(code, copy);
    bar.append(label, copy);
    const pre = el("pre"), c = el("code");
    if (lang) c.dataset.lang = lang;
    c.textContent = code;
    pre.append(c);
    wrap.append(bar, pre);
    return wrap;
  }

  function blocks(lines, parent) {
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if (!line.trim()) { i++; continue; }
      if ((m = FENCE.exec(line))) {
        const fence = m[1], body = [];
        for (i++; i < lines.length; i++) {
          const close = lines[i].trim();
          if (close.startsWith(fence) && close.replace(fence[0] === "`" ? /`/g : /~/g, "") === "") break;
          body.push(lines[i]);
        }
        i++;  // the closing fence (or past the end while it streams in)
        parent.append(codeBlock(body.join("\n"), m[2]));
      } else if ((m = HEADING.exec(line))) {
        const h = el("h" + m[1].length);
        inline(m[2], h);
        parent.append(h);
        i++;
      } else if (RULE.test(line)) {
        parent.append(el("hr"));
        i++;
      } else if (QUOTE.test(line)) {
        const inner = [];
        while (i < lines.length && (m = QUOTE.exec(lines[i]))) { inner.push(m[1]); i++; }
        const q = el("blockquote");
        blocks(inner, q);
        parent.append(q);
      } else if ((m = ITEM.exec(line))) {
        const indent = m[1].length, ordered = /\d/.test(m[2]);
        const list = el(ordered ? "ol" : "ul");
        if (ordered && parseInt(m[2], 10) !== 1) list.start = parseInt(m[2], 10);
        while (i < lines.length && (m = ITEM.exec(lines[i])) && m[1].length === indent &&
               /\d/.test(m[2]) === ordered) {
          const body = [m[3]], width = m[1].length + m[2].length + 1;
          for (i++; i < lines.length; i++) {
            const next = lines[i];
            if (!next.trim()) {  // a blank line continues the item only if indented text follows
              if (i + 1 < lines.length && /^\s+\S/.test(lines[i + 1]) &&
                  lines[i + 1].search(/\S/) > indent) { body.push(""); continue; }
              break;
            }
            const lead = next.search(/\S/);
            if (lead <= indent && (ITEM.test(next) || startsBlock(next))) break;
            body.push(next.slice(Math.min(lead, width)));
          }
          const li = el("li");
          blocks(body, li);
          // A tight item is a paragraph's text without the <p>.
          if (li.firstChild?.tagName === "P") li.firstChild.replaceWith(...li.firstChild.childNodes);
          list.append(li);
          while (i < lines.length && !lines[i].trim() && i + 1 < lines.length &&
                 ITEM.test(lines[i + 1])) i++;  // a loose list: blank lines between items
        }
        parent.append(list);
      } else if (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1])) {
        const table = el("table"), head = el("thead"), body = el("tbody"), tr = el("tr");
        for (const c of cells(line)) { const th = el("th"); inline(c, th); tr.append(th); }
        head.append(tr);
        for (i += 2; i < lines.length && lines[i].includes("|") && lines[i].trim(); i++) {
          const row = el("tr");
          for (const c of cells(lines[i])) { const td = el("td"); inline(c, td); row.append(td); }
          body.append(row);
        }
        table.append(head, body);
        const scroll = el("div", "tablewrap");
        scroll.append(table);
        parent.append(scroll);
      } else {
        const para = [line];
        for (i++; i < lines.length && lines[i].trim() && !startsBlock(lines[i], lines[i + 1]); i++) {
          para.push(lines[i]);
        }
        const p = el("p");
        inline(para.join("\n"), p);
        parent.append(p);
      }
    }
  }

  // Replaces the children of `target` with the rendering of `text`.
  function render(text, target) {
    const frag = document.createDocumentFragment();
    blocks(text.replace(/\r\n?/g, "\n").split("\n"), frag);
    target.replaceChildren(frag);
  }

  return { render };
})();

// Copies text; the Clipboard API needs a secure context (https or localhost), so plain-http
// servers on another host fall back to a selected textarea. `button` shows the outcome.
async function copyText(text, button) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch (e) {
    const area = document.createElement("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    try { ok = document.execCommand("copy"); } catch (e2) { ok = false; }
    area.remove();
  }
  if (button) {
    button.dataset.label ||= button.textContent;
    button.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => { button.textContent = button.dataset.label; }, 1200);
  }
  return ok;
}
