// Message text to HTML that cannot run anything. Two layers: marked shows
// HTML written in a message as text (a reply quoting "<img onerror=…>" shows
// those characters), and DOMPurify keeps only the elements Markdown makes,
// with links to http(s) and mailto only. The page's Content-Security-Policy
// is the third: no inline script, nothing from another origin.
import DOMPurify from "dompurify";
import { Marked } from "marked";

const escapes = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => escapes[c]);
}

const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    html: ({ text }) => escapeHtml(text),
  },
});

const allowedTags = ["a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5",
  "h6", "hr", "li", "ol", "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul"];
const safeLink = /^(?:https?:|mailto:)/i;

const purifier = DOMPurify();
purifier.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName !== "A") return;
  const href = node.getAttribute("href");
  if (href && !safeLink.test(href.trim())) node.removeAttribute("href");
  if (node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

/// `text` as Markdown, sanitized: a DocumentFragment to put in the page.
export function renderMarkdown(text) {
  return purifier.sanitize(marked.parse(text), {
    ALLOWED_TAGS: allowedTags,
    ALLOWED_ATTR: ["href", "title", "start", "align"],
    RETURN_DOM_FRAGMENT: true,
  });
}

/// A search snippet: text HTML-escaped by the server with matches in <mark>.
export function renderSnippet(html) {
  return purifier.sanitize(html, { ALLOWED_TAGS: ["mark"], ALLOWED_ATTR: [],
                                   RETURN_DOM_FRAGMENT: true });
}
