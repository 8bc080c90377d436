// The active model: its card (net, training data, validation table, thresholds), the provider,
// the gallery size, the self-test, refresh progress; admins activate a new model file.

import { call, upload } from "./api.js";
import { $, busy, el, showError } from "./ui.js";

let polling = null;

function validationTable(validation) {
  if (!validation?.rank1) return el("p", { text: "No validation figures in the card." });
  const metrics = Object.entries(validation.rank1);
  const conditions = Object.keys(metrics[0][1]);
  return el(
    "table",
    { class: "validation" },
    el("caption", { text: `Validation rank-1 % on ${validation.subjects}${validation.subject_count ? ` (${validation.subject_count} subjects, gallery of ${validation.gallery_sequences} sequences)` : ""}` }),
    el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "distance" }), conditions.map((c) => el("th", { scope: "col", text: c })))),
    el("tbody", {}, metrics.map(([metric, figures]) =>
      el("tr", {}, el("th", { scope: "row", text: metric }), conditions.map((c) => el("td", { text: Number(figures[c]).toFixed(1) }))))),
  );
}

function calibrationText(calibration) {
  if (!calibration) return "The card does not say where its thresholds were measured.";
  return `Calibrated on ${calibration.source}: ${calibration.subjects} (${calibration.subject_count} subjects, `
    + `${calibration.genuine_pairs.toLocaleString()} genuine and ${calibration.impostor_pairs.toLocaleString()} impostor pairs, across views).`;
}

// Whether the served engine reproduced its card's fp32 reference embeddings on this machine, and
// which variant was refused at start (an int8 variant whose kernels are wrong on this CPU).
function proofText(start) {
  const proof = start?.proof;
  if (!proof) return null;
  if (proof.passed === null) return "unproven: the card carries no reference embeddings";
  const verdict = proof.passed ? "agrees with its fp32 reference" : "DISAGREES with its fp32 reference";
  const refused = start.refused ? ` ${start.refused.version} was refused on this CPU (agreement ${start.refused.agreement.toFixed(4)}, needs ${start.refused.bound}); serving fp32 instead.` : "";
  return `${verdict}: worst agreement ${proof.agreement.toFixed(4)} over ${proof.clips} clips (needs ${proof.bound}); CPU ${proof.cpu}.${refused}`;
}

function selfTestText(selfTest) {
  if (!selfTest) return "not run yet";
  if (!selfTest.ok) return `failed: ${selfTest.error}`;
  const agreement = selfTest.agreement === null ? "" : `, agreement ${selfTest.agreement.toFixed(4)}`;
  return `passed, ${selfTest.embed_ms} ms${agreement}`;
}

function modelView(model) {
  const card = model.card ?? {};
  const refresh = model.refresh ?? {};
  const facts = [
    ["Name", card.name],
    ["Version", model.version],
    ["Net", card.net],
    ["Provider", `${model.provider} (${model.device})`],
    ["Gallery", `${model.gallery_samples} sample${model.gallery_samples === 1 ? "" : "s"}`],
    ["Trained on", card.training?.subjects],
    ["Precision", card.variant ? `${card.variant}${card.quantization ? ` (${card.quantization.split(":")[0]})` : ""}` : null],
    ["Proof", proofText(model.start)],
    ["Self-test", selfTestText(model.self_test)],
  ];
  const percent = (rate) => `${(100 * rate).toFixed(1)} %`;
  const thresholds = (card.thresholds ?? []).map((t) => {
    const perCondition = Object.entries(t.tar_per_condition ?? {}).map(([name, rate]) => `${name} ${percent(rate)}`).join(", ");
    const interval = t.far_interval ? `; on other people like these, FAR ${percent(t.far_interval[0])}–${percent(t.far_interval[1])}` : "";
    return el("li", { text: `score ≥ ${t.score.toFixed(4)}: ${percent(t.far)} FAR, true accept rate ${percent(t.tar)}`
      + (perCondition ? ` (${perCondition})` : "") + interval });
  });
  const parts = [
    el("dl", { class: "facts" }, facts.map(([name, value]) => [el("dt", { text: name }), el("dd", { text: value ?? "–" })])),
    validationTable(card.validation),
    el("h3", { text: "Thresholds" }),
    thresholds.length ? el("ul", {}, thresholds) : el("p", { text: "None: pass one with each request." }),
    thresholds.length ? el("p", { class: "threshold-meaning", text: "Rates are per pair: one probe clip against one gallery walk seen from another view. "
      + "Identify and verify score a subject by their best sample, over every view and (identify) every subject, so they accept strangers more often than that." }) : null,
    el("p", { class: "calibration", text: calibrationText(card.calibration) }),
    el("h3", { text: "Refresh" }),
  ];
  if (refresh.state === "running") {
    parts.push(
      el("label", { for: "refresh-progress", text: `Re-embedding the gallery for ${refresh.target_version}: ${refresh.done} of ${refresh.total}` }),
      el("progress", { id: "refresh-progress", max: String(refresh.total || 1), value: String(refresh.done) }),
    );
  } else {
    parts.push(el("p", { text: refresh.state === "failed" ? `Last refresh failed: ${refresh.error}` : `State: ${refresh.state ?? "idle"}` }));
  }
  return el("div", {}, parts);
}

export async function refreshModel() {
  showError("#model-error", null);
  try {
    const model = await call("GET", "/model");
    $("#model-info").replaceChildren(modelView(model));
    if (model.refresh?.state === "running" && !polling) {
      polling = setInterval(refreshModel, 1000);
    } else if (model.refresh?.state !== "running" && polling) {
      clearInterval(polling);
      polling = null;
    }
  } catch (error) {
    showError("#model-error", error);
  }
}

export function setUpModel() {
  const form = $("#activate-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("#activate-error", null);
    const data = new FormData();
    data.append("model", $("#activate-file").files[0]);
    await busy(form.querySelector("button"), async () => {
      try {
        await upload("POST", "/admin/model", data, () => {});
        form.reset();
        await refreshModel();
      } catch (error) {
        showError("#activate-error", error);
      }
    });
  });
}
