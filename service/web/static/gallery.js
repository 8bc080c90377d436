// The gallery: subjects paged and filtered, a subject's samples with their GEIs, enrollment
// (one clip, or many in one all-or-none request with upload progress), deletion after a
// confirmation.

import { call, imageUrl, releaseImages, upload } from "./api.js";
import { $, busy, confirm, el, showError } from "./ui.js";

const PAGE = 20;
const state = { offset: 0, total: 0, q: "" };

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}

async function showSubject(subjectId) {
  const detail = $("#subject-detail");
  showError("#gallery-error", null);
  try {
    const subject = await call("GET", `/gallery/subjects/${encodeURIComponent(subjectId)}`);
    releaseImages("subject");
    const rows = subject.samples.map((sample) => {
      const img = el("img", { class: "gei", alt: `GEI of sample ${sample.id}` });
      imageUrl(`/gallery/samples/${sample.id}/gei.png`, "subject").then(
        (url) => { img.src = url; },
        (error) => { img.alt = `GEI unavailable: ${error.message}`; },
      );
      const remove = el("button", {
        type: "button",
        class: "danger",
        text: "Delete",
        "aria-label": `Delete sample ${sample.id}`,
        onclick: async () => {
          if (!(await confirm(`Delete sample ${sample.id} of ${subject.id}? Its silhouettes and embeddings are erased.`))) return;
          try {
            await call("DELETE", `/gallery/subjects/${encodeURIComponent(subject.id)}/samples/${sample.id}`);
            await refresh();
            await showSubject(subject.id);
          } catch (error) {
            showError("#gallery-error", error);
          }
        },
      });
      return el(
        "tr",
        { "data-sample": String(sample.id) },
        el("td", {}, img),
        el("td", { text: String(sample.id) }),
        el("td", { text: sample.condition ?? "–" }),
        el("td", { text: sample.view ?? "–" }),
        el("td", { text: String(sample.frames) }),
        el("td", { text: when(sample.created_at) }),
        el("td", {}, remove),
      );
    });
    detail.replaceChildren(
      el("h3", { text: `Subject ${subject.id}` }),
      el(
        "table",
        { class: "samples" },
        el("caption", { text: `${subject.samples.length} sample${subject.samples.length === 1 ? "" : "s"} of ${subject.id}` }),
        el("thead", {}, el("tr", {}, ["GEI", "Sample", "Condition", "View", "Frames", "Enrolled", ""].map(
          (name) => el("th", { scope: "col" }, name || el("span", { class: "visually-hidden", text: "Actions" })),
        ))),
        el("tbody", {}, rows),
      ),
    );
  } catch (error) {
    detail.replaceChildren();
    showError("#gallery-error", error);
  }
}

async function deleteSubject(subjectId) {
  if (!(await confirm(`Delete subject ${subjectId} and all its samples? Their silhouettes and embeddings are erased.`))) return;
  try {
    await call("DELETE", `/gallery/subjects/${encodeURIComponent(subjectId)}`);
    $("#subject-detail").replaceChildren();
    await refresh();
  } catch (error) {
    showError("#gallery-error", error);
  }
}

export async function refresh() {
  showError("#gallery-error", null);
  try {
    const query = new URLSearchParams({ offset: state.offset, limit: PAGE, q: state.q });
    const page = await call("GET", `/gallery/subjects?${query}`);
    state.total = page.total;
    const rows = page.items.map((item) =>
      el(
        "tr",
        { "data-subject": item.id },
        el("th", { scope: "row" }, el("button", { type: "button", class: "link", text: item.id, onclick: () => showSubject(item.id) })),
        el("td", { text: String(item.samples) }),
        el("td", {}, el("button", { type: "button", class: "danger", text: "Delete", "aria-label": `Delete subject ${item.id}`, onclick: () => deleteSubject(item.id) })),
      ),
    );
    $("#subjects tbody").replaceChildren(...rows);
    const last = Math.min(state.offset + PAGE, page.total);
    $("#page-info").textContent = page.total ? `${state.offset + 1}–${last} of ${page.total}` : "no subjects";
    $("#subjects-caption").textContent = state.q ? `Subjects whose id contains “${state.q}”` : "Subjects";
    $("#prev-page").disabled = state.offset === 0;
    $("#next-page").disabled = last >= page.total;
  } catch (error) {
    showError("#gallery-error", error);
  }
}

async function enroll(event) {
  event.preventDefault();
  showError("#enroll-error", null);
  const subject = $("#enroll-subject").value.trim();
  const condition = $("#enroll-condition").value.trim() || null;
  const view = $("#enroll-view").value.trim() || null;
  const files = [...$("#enroll-clips").files];
  const progress = $("#enroll-progress");
  const status = $("#enroll-status");
  const form = new FormData();
  let method = "POST";
  let path;
  if (files.length === 1) {
    path = `/gallery/subjects/${encodeURIComponent(subject)}/samples`;
    form.append("clip", files[0]);
    if (condition) form.append("condition", condition);
    if (view) form.append("view", view);
  } else {
    path = "/gallery/samples";
    for (const file of files) form.append("clips", file);
    form.append("manifest", JSON.stringify(files.map(() => ({ subject_id: subject, condition, view }))));
  }
  await busy($("#enroll-form button[type=submit]"), async () => {
    progress.hidden = false;
    progress.value = 0;
    status.textContent = `Uploading ${files.length} clip${files.length > 1 ? "s" : ""}…`;
    try {
      const answer = await upload(method, path, form, (fraction) => {
        progress.value = fraction;
        if (fraction >= 1) status.textContent = "Embedding and storing…";
      });
      const count = answer.samples ? answer.samples.length : 1;
      status.textContent = `Enrolled ${count} sample${count > 1 ? "s" : ""} for ${subject}.`;
      $("#enroll-form").reset();
      await refresh();
      await showSubject(subject);
    } catch (error) {
      status.textContent = "";
      showError("#enroll-error", error);
    } finally {
      progress.hidden = true;
    }
  });
}

export function setUpGallery() {
  $("#enroll-form").addEventListener("submit", enroll);
  $("#filter-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.q = $("#filter").value.trim();
    state.offset = 0;
    refresh();
  });
  $("#prev-page").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE);
    refresh();
  });
  $("#next-page").addEventListener("click", () => {
    state.offset += PAGE;
    refresh();
  });
}
