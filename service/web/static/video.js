// Video: drop an ordinary video, see every person found (thumbnail, silhouettes, answer),
// and enroll one of them under a subject id with one click. A client of
// POST /identify/video and POST /gallery/subjects/{id}/samples/video (docs/video.md).

import { upload } from "./api.js";
import { $, busy, el, picture, scoreBar, showError } from "./ui.js";

let current = null; // the video whose people are shown (sent again to enroll one of them)

function answer(result) {
  if (result.decision) {
    return el("p", { class: "decision known" }, "Identified: ", el("strong", { text: result.decision }));
  }
  const top = result.hits[0];
  const text = top
    ? `Unknown: the closest, ${top.subject_id}, scores ${top.score.toFixed(4)} (threshold ${result.threshold.toFixed(4)}).`
    : "Unknown: the gallery is empty.";
  return el("p", { class: "decision unknown", text });
}

function hitsList(result, trackId) {
  if (!result.hits.length) return null;
  return el(
    "ol",
    { class: "video-hits", "aria-label": `Subjects ranked for person ${trackId}` },
    result.hits.map((hit) =>
      el(
        "li",
        { "data-subject": hit.subject_id },
        el("span", { class: "subject", text: hit.subject_id }),
        el("span", { class: "score", text: ` ${hit.score.toFixed(4)}` }),
        scoreBar(hit.score, result.threshold, `${hit.subject_id} for person ${trackId}`),
      ),
    ),
  );
}

function enrollForm(track) {
  const id = `video-enroll-${track.id}`;
  const status = el("p", { class: "status", role: "status" });
  const error = el("p", { class: "error", role: "alert" });
  const input = el("input", {
    id,
    name: "subject_id",
    type: "text",
    required: true,
    maxlength: "64",
    pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}",
    autocomplete: "off",
    value: track.identify.decision ?? "",
  });
  const form = el(
    "form",
    { class: "video-enroll" },
    el("label", { for: id, text: `Enroll person ${track.id} as` }),
    input,
    el("button", { type: "submit", text: "Enroll" }),
    status,
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(error, null);
    status.textContent = "";
    const subject = input.value.trim();
    const body = new FormData();
    body.append("clip", current.file);
    body.append("track", String(track.id));
    body.append("rotate", current.rotate);
    await busy(form.querySelector("button"), async () => {
      try {
        const sample = await upload("POST", `/gallery/subjects/${encodeURIComponent(subject)}/samples/video`, body, () => {});
        status.textContent = `Enrolled person ${track.id} as ${sample.subject_id} (sample ${sample.id}, ${sample.frames} frames).`;
      } catch (failure) {
        showError(error, failure);
      }
    });
  });
  return form;
}

function personCard(track) {
  const result = track.identify;
  const first = track.frames[0];
  const last = track.frames[track.frames.length - 1];
  return el(
    "li",
    { class: "person", "data-track": String(track.id) },
    el("h3", { text: `Person ${track.id}` }),
    el(
      "div",
      { class: "pictures" },
      picture(track.thumbnail, `Person ${track.id} in the video`, "thumbnail"),
      picture(result.probe.strip, `Silhouettes of person ${track.id}`, "strip"),
    ),
    el("p", { class: "hint", text: `Frames ${first}–${last}; ${result.frames} silhouettes identified.` }),
    answer(result),
    hitsList(result, track.id),
    enrollForm(track),
  );
}

function videoView(result) {
  const { video, tracks, dropped } = result;
  const rotated = video.rotation ? `, turned ${video.rotation}° to stand people upright` : "";
  return el(
    "div",
    {},
    el("p", {
      class: "status",
      text: `${video.frames} frames of ${video.width}×${video.height} at ${video.fps.toFixed(1)} fps${rotated}: ${tracks.length} ${tracks.length === 1 ? "person" : "people"} found.`,
    }),
    tracks.length
      ? el("ol", { class: "people", "aria-label": "People found" }, tracks.map(personCard))
      : el("p", { text: "Nobody was followed long enough to identify." }),
    dropped.length
      ? el(
          "details",
          { class: "dropped" },
          el("summary", { text: `${dropped.length} left out` }),
          el("ul", {}, dropped.map((d) => el("li", { text: `Person ${d.id}: ${d.reason}` }))),
        )
      : null,
  );
}

export function setUpVideo() {
  const form = $("#video-form");
  const input = $("#video-file");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("#video-error", null);
    const file = input.files[0];
    const rotate = $("#video-rotate").value;
    const body = new FormData();
    body.append("clip", file);
    const progress = $("#video-progress");
    await busy(form.querySelector("button"), async () => {
      progress.hidden = false;
      $("#video-status").textContent = "Uploading…";
      try {
        const result = await upload("POST", `/identify/video?pictures=true&rotate=${encodeURIComponent(rotate)}`, body, (done) => {
          progress.value = done;
          if (done >= 1) $("#video-status").textContent = "Finding and following people…";
        });
        current = { file, rotate };
        $("#video-result").replaceChildren(videoView(result));
        $("#video-status").textContent = "";
      } catch (error) {
        $("#video-result").replaceChildren();
        $("#video-status").textContent = "";
        showError("#video-error", error);
      } finally {
        progress.hidden = true;
      }
    });
  });
  form.addEventListener("dragover", (event) => {
    event.preventDefault();
    form.classList.add("dragging");
  });
  form.addEventListener("dragleave", () => form.classList.remove("dragging"));
  form.addEventListener("drop", (event) => {
    event.preventDefault();
    form.classList.remove("dragging");
    if (event.dataTransfer.files.length) input.files = event.dataTransfer.files;
  });
}
