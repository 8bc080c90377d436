// Identify and Verify: a clip in, the probe as the service saw it, the decision and the scores.

import { call, imageUrl, releaseImages } from "./api.js";
import { $, busy, el, picture, scoreBar, showError } from "./ui.js";

function probeView(probe, frames) {
  return el(
    "figure",
    { class: "probe" },
    el("div", { class: "pictures" }, picture(probe.gei, "Gait energy image of the probe"), picture(probe.strip, "Frames of the probe", "strip")),
    el("figcaption", { text: `The probe as the service saw it: ${frames} normalised frames and their mean (GEI).` }),
  );
}

async function hitGei(sampleId, img) {
  try {
    img.src = await imageUrl(`/gallery/samples/${sampleId}/gei.png`, "identify");
  } catch (error) {
    img.alt = `GEI unavailable: ${error.message}`;
  }
}

// How the decision was set, in words: the promise it keeps and for which gallery.
function ruleText(rule) {
  if (rule.basis === "fpir") {
    return `Set so that at most ${percent(rule.fpir)} of searches by people who are not enrolled name anyone, `
      + `for this gallery of ${rule.gallery_subjects} subject${rule.gallery_subjects === 1 ? "" : "s"} (score threshold ${rule.threshold.toFixed(4)}).`;
  }
  if (rule.basis === "pair_far") {
    return `The model card's per-pair threshold ${rule.threshold.toFixed(4)} (${percent(rule.far)} false accepts for one walk against one sample): `
      + `a search of ${rule.gallery_subjects} subjects names strangers more often than that.`;
  }
  return `The threshold you gave: ${rule.threshold.toFixed(4)}.`;
}

function percent(rate) {
  if (rate === null || rate === undefined) return "–";
  const value = 100 * rate;
  return `${value >= 1 ? value.toFixed(1) : value >= 0.01 ? value.toFixed(2) : value.toExponential(1)} %`;
}

// A bar on the scale of doubt: how often strangers' searches of this gallery reach the hit's score
// (left: always, right: 1 in 10,000), with the promise marked. Only a hit right of the mark is named.
function doubtBar(chance, promise, label, named) {
  const position = (rate) => `${Math.min(100, Math.max(0, (-Math.log10(Math.max(rate, 1e-4)) / 4) * 100)).toFixed(1)}%`;
  const bar = el("div", {
    class: `score-bar doubt ${named ? "pass" : chance <= promise ? "near" : "fail"}`,
    role: "img",
    "aria-label": `${label}: strangers reach this score in ${percent(chance)} of searches; the promise allows ${percent(promise)}`,
  });
  bar.append(
    el("span", { class: "fill", style: { width: position(chance) } }),
    el("span", { class: "threshold", style: { left: position(promise) } }),
  );
  return bar;
}

function decisionView(result) {
  const top = result.hits[0];
  if (result.decision) {
    const margin = result.margin === null ? "" : `; ${result.margin.toFixed(4)} ahead of the next subject`;
    const chance = top.stranger_chance === null ? "" : ` Strangers' searches of this gallery score this high ${percent(top.stranger_chance)} of the time${margin}.`;
    return el("div", { class: "decision known" }, el("p", {}, "Named: ", el("strong", { text: result.decision })), el("p", { class: "why", text: `Score ${top.score.toFixed(4)}.${chance}` }));
  }
  const nobody = el("p", {}, el("strong", { text: "Nobody enrolled" }), " — as far as the promise allows.");
  if (!top) return el("div", { class: "decision unknown" }, nobody, el("p", { class: "why", text: "The gallery is empty." }));
  const chance = top.stranger_chance === null ? "" : `; strangers' searches of this gallery reach that score ${percent(top.stranger_chance)} of the time`;
  return el("div", { class: "decision unknown" }, nobody,
    el("p", { class: "why", text: `The closest, ${top.subject_id}, scores ${top.score.toFixed(4)}, below the threshold ${result.threshold.toFixed(4)}${chance}.` }));
}

function identifyView(result) {
  const curves = result.rule.basis === "fpir";
  const rows = result.hits.map((hit, rank) => {
    const img = el("img", { class: "gei", alt: `GEI of sample ${hit.sample_id} of ${hit.subject_id}` });
    hitGei(hit.sample_id, img);
    const named = rank === 0 && result.decision === hit.subject_id;
    const meaning = hit.stranger_chance === null ? "" : `; strangers reach it in ${percent(hit.stranger_chance)} of searches`;
    return el(
      "li",
      { class: `hit${named ? " named" : ""}`, "data-subject": hit.subject_id },
      img,
      el(
        "div",
        { class: "hit-text" },
        el("span", { class: "subject", text: `${rank + 1}. ${hit.subject_id}${named ? " (named)" : ""}` }),
        el("span", { class: "score", text: `score ${hit.score.toFixed(4)}${meaning} (sample ${hit.sample_id}, ${hit.views} view${hit.views === 1 ? "" : "s"})` }),
        curves && hit.stranger_chance !== null
          ? doubtBar(hit.stranger_chance, result.rule.fpir, hit.subject_id, named)
          : scoreBar(hit.score, result.threshold, hit.subject_id),
      ),
    );
  });
  return el(
    "div",
    {},
    probeView(result.probe, result.frames),
    decisionView(result),
    el("p", { class: "threshold-note", text: `${ruleText(result.rule)} Model ${result.model_version}.` }),
    curves ? el("p", { class: "doubt-note", text: "Bars: how rarely a stranger scores this high in this gallery (further right is rarer); the mark is the promise. Runners-up are never named." }) : null,
    rows.length ? el("ol", { class: "hits", "aria-label": "Ranked subjects" }, rows) : null,
  );
}

function verifyView(result) {
  const chance = result.false_accept_chance === null ? "" : ` Stranger pairs reach this score ${percent(result.false_accept_chance)} of the time.`;
  return el(
    "div",
    {},
    probeView(result.probe, result.frames),
    el("p", { class: `decision ${result.accepted ? "known" : "unknown"}` },
      result.accepted ? "Accepted: " : "Rejected: ",
      el("strong", { text: result.subject_id }),
      ` scores ${result.score.toFixed(4)} against the threshold ${result.threshold.toFixed(4)}.${chance}`),
    el("p", { class: "threshold-note", text: ruleText(result.rule) }),
    result.false_accept_chance === null
      ? scoreBar(result.score, result.threshold, result.subject_id)
      : doubtBar(result.false_accept_chance, result.rule.far ?? 0.01, result.subject_id, result.accepted),
  );
}

export function setUpRecognition() {
  const identify = $("#identify-form");
  identify.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("#identify-error", null);
    const form = new FormData();
    form.append("clip", $("#identify-clip").files[0]);
    const topK = $("#identify-top-k").value || "5";
    await busy(identify.querySelector("button"), async () => {
      try {
        const result = await call("POST", `/identify?pictures=true&top_k=${encodeURIComponent(topK)}`, form);
        releaseImages("identify");
        $("#identify-result").replaceChildren(identifyView(result));
      } catch (error) {
        $("#identify-result").replaceChildren();
        showError("#identify-error", error);
      }
    });
  });

  const verify = $("#verify-form");
  verify.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("#verify-error", null);
    const form = new FormData();
    form.append("clip", $("#verify-clip").files[0]);
    form.append("subject_id", $("#verify-subject").value.trim());
    await busy(verify.querySelector("button"), async () => {
      try {
        $("#verify-result").replaceChildren(verifyView(await call("POST", "/verify?pictures=true", form)));
      } catch (error) {
        $("#verify-result").replaceChildren();
        showError("#verify-error", error);
      }
    });
  });

  for (const zone of document.querySelectorAll(".drop-zone")) {
    const input = zone.querySelector('input[type="file"]');
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      if (event.dataTransfer.files.length) input.files = event.dataTransfer.files;
    });
  }
}
