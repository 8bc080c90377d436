// GaitLab's page: four views over the public API, and the API key prompt.

import { key, whenUnauthorized } from "./api.js";
import { refresh as refreshGallery, setUpGallery } from "./gallery.js";
import { refreshModel, setUpModel } from "./model.js";
import { setUpRecognition } from "./recognition.js";
import { $ } from "./ui.js";
import { setUpVideo } from "./video.js";

const VIEWS = ["identify", "video", "verify", "gallery", "model"];
const ON_SHOW = { gallery: refreshGallery, model: refreshModel };

function show(view) {
  const name = VIEWS.includes(view) ? view : "identify";
  for (const other of VIEWS) {
    $(`#${other}`).hidden = other !== name;
    const tab = $(`#tab-${other}`);
    if (other === name) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  ON_SHOW[name]?.();
}

function askForKey(reason) {
  const dialog = $("#key-dialog");
  if (dialog.open) return;
  $("#key-reason").textContent = reason;
  $("#key-input").value = key.get() ?? "";
  dialog.showModal();
}

function setUpKey() {
  const dialog = $("#key-dialog");
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "clear") key.clear();
    // only a new key reloads the view: a cancelled prompt must not ask again at once
    if (dialog.returnValue === "save" && $("#key-input").value.trim()) {
      key.set($("#key-input").value.trim());
      show(location.hash.slice(1));
    }
  });
  $("#key-button").addEventListener("click", () => askForKey("Enter an API key for this service."));
  whenUnauthorized((status, detail) =>
    askForKey(status === 401 ? `This service needs an API key (${detail}).` : `This key may not do that (${detail}); an admin key can.`));
}

setUpKey();
setUpRecognition();
setUpVideo();
setUpGallery();
setUpModel();
window.addEventListener("hashchange", () => show(location.hash.slice(1)));
show(location.hash.slice(1));
