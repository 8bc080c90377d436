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

function identifyView(result) {
  const decision = result.decision
    ? el("p", { class: "decision known" }, "Identified: ", el("strong", { text: result.decision }))
    : el("p", { class: "decision unknown", text: "Unknown: no subject scores above the threshold." });
  const rows = result.hits.map((hit, rank) => {
    const img = el("img", { class: "gei", alt: `GEI of sample ${hit.sample_id} of ${hit.subject_id}` });
    hitGei(hit.sample_id, img);
    return el(
      "li",
      { class: "hit", "data-subject": hit.subject_id },
      img,
      el(
        "div",
        { class: "hit-text" },
        el("span", { class: "subject", text: `${rank + 1}. ${hit.subject_id}` }),
        el("span", { class: "score", text: `score ${hit.score.toFixed(4)} (sample ${hit.sample_id})` }),
        scoreBar(hit.score, result.threshold, hit.subject_id),
      ),
    );
  });
  return el(
    "div",
    {},
    probeView(result.probe, result.frames),
    decision,
    el("p", { class: "threshold-note", text: `Threshold ${result.threshold.toFixed(4)} (the model card's threshold for 1 % false accepts per pair); model ${result.model_version}.` }),
    rows.length ? el("ol", { class: "hits", "aria-label": "Ranked subjects" }, rows) : el("p", { text: "The gallery is empty." }),
  );
}

function verifyView(result) {
  return el(
    "div",
    {},
    probeView(result.probe, result.frames),
    el("p", { class: `decision ${result.accepted ? "known" : "unknown"}` },
      result.accepted ? "Accepted: " : "Rejected: ",
      el("strong", { text: result.subject_id }),
      ` scores ${result.score.toFixed(4)} against the threshold ${result.threshold.toFixed(4)}.`),
    scoreBar(result.score, result.threshold, result.subject_id),
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
