// Small DOM helpers shared by the views.

export const $ = (selector, root = document) => root.querySelector(selector);

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name === "style") Object.assign(node.style, value); // CSSOM: allowed by the CSP
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export function showError(target, error) {
  const where = typeof target === "string" ? $(target) : target;
  where.textContent = error ? (error.status ? `${error.status}: ${error.message}` : error.message) : "";
}

export async function busy(button, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

const confirmDialog = () => $("#confirm-dialog");

export function confirm(text) {
  return new Promise((resolve) => {
    const dialog = confirmDialog();
    $("#confirm-text", dialog).textContent = text;
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.showModal();
  });
}

export function picture(src, alt, className = "gei") {
  return el("img", { src, alt, class: className });
}

// A score drawn against the threshold: a bar from -1 to 1 with the threshold marked.
export function scoreBar(score, threshold, label) {
  const position = (value) => `${(((Math.max(-1, Math.min(1, value)) + 1) / 2) * 100).toFixed(1)}%`;
  const bar = el("div", {
    class: `score-bar ${score >= threshold ? "pass" : "fail"}`,
    role: "img",
    "aria-label": `${label}: score ${score.toFixed(4)}, threshold ${threshold.toFixed(4)}`,
  });
  bar.append(
    el("span", { class: "fill", style: { width: position(score) } }),
    el("span", { class: "threshold", style: { left: position(threshold) } }),
  );
  return bar;
}
