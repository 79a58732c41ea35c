// Model text -> safe DOM: Markdown by `marked`, then `DOMPurify` in front of the document, always.
//
// What the model writes is untrusted: a prompt injected through a tool result or a pasted document can make it write
// anything. So: raw HTML in the text is shown as text (never parsed), the Markdown's own HTML goes through DOMPurify
// with a short allow-list (no images, iframes, forms, styles or event handlers), links keep only http(s) and mailto
// URLs (`javascript:` never becomes a link) and open in a new tab with rel="noopener noreferrer", and the page's CSP
// (script-src 'self') stops anything that would still slip through.

import { Marked } from "./vendor/marked.esm.js";
import DOMPurify from "./vendor/purify.es.js";

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escapeHtml = (text) => String(text ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);

const markdown = new Marked({ gfm: true, breaks: false, async: false });
markdown.use({
  renderer: {
    // Raw HTML, block or inline: as text. A model quoting markup gets it on screen, not in the DOM.
    html({ text }) {
      return escapeHtml(text);
    },
    // No <img>: a remote image is a tracking pixel the model chose. Show it as a link the user can decide to open.
    image({ href, text }) {
      return `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`;
    },
  },
});

const PURIFY = {
  ALLOWED_TAGS: [
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li", "ol", "p", "pre",
    "strong", "table", "tbody", "td", "th", "thead", "tr", "ul", "input",
  ],
  ALLOWED_ATTR: ["href", "title", "align", "start", "class", "type", "checked", "disabled"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
  ALLOW_DATA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    if (node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  } else if (node.tagName === "INPUT") {
    // Only GFM task-list checkboxes, read-only.
    if (node.getAttribute("type") !== "checkbox") node.remove();
    else node.setAttribute("disabled", "");
  }
  // Classes only as marked writes them (`language-x` on code): model text must not borrow the page's own classes.
  if (node.hasAttribute?.("class")) {
    const kept = [...node.classList].filter((name) => /^language-[\w+#-]+$/.test(name));
    if (kept.length) node.setAttribute("class", kept.join(" "));
    else node.removeAttribute("class");
  }
});

/** Copy `text` to the clipboard; the fallback covers pages served over plain http from another host. */
async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "visually-hidden";
  document.body.append(area);
  area.select();
  try {
    document.execCommand("copy");
  } finally {
    area.remove();
  }
}

function decorate(fragment) {
  for (const pre of fragment.querySelectorAll("pre")) {
    const wrapper = document.createElement("div");
    wrapper.className = "code-block";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy code");
    button.addEventListener("click", async () => {
      try {
        await copyText(pre.textContent);
        button.textContent = "Copied";
      } catch {
        button.textContent = "Copy failed";
      }
      setTimeout(() => (button.textContent = "Copy"), 1500);
    });
    pre.replaceWith(wrapper);
    wrapper.append(button, pre);
  }
  // A wide table scrolls inside its own box, never the page.
  for (const table of fragment.querySelectorAll("table")) {
    const wrapper = document.createElement("div");
    wrapper.className = "table-scroll";
    wrapper.tabIndex = 0; // scrollable regions must be reachable by keyboard
    table.replaceWith(wrapper);
    wrapper.append(table);
  }
  return fragment;
}

/** A DocumentFragment of `text` rendered as Markdown, sanitised. */
export function renderMarkdown(text) {
  const html = markdown.parse(String(text ?? "")).trim();
  return decorate(DOMPurify.sanitize(html, PURIFY));
}
