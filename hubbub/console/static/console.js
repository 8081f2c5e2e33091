// hubbub console: the only script. No library, no build step.
// data-load="URL": fill the element once from URL (HTML fragment).
// data-refresh="URL" data-every="MS": refill the element every MS milliseconds.
// data-check-all: a checkbox that ticks every "id" checkbox of its form.
"use strict";
(function () {
  function fill(el, url) {
    return fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { el.innerHTML = html; el.removeAttribute("aria-busy"); })
      .catch(function (why) { el.setAttribute("data-stale", String(why)); });
  }
  document.querySelectorAll("[data-load]").forEach(function (el) {
    fill(el, el.getAttribute("data-load"));
  });
  document.querySelectorAll("[data-refresh]").forEach(function (el) {
    var every = parseInt(el.getAttribute("data-every"), 10) || 5000;
    setInterval(function () { fill(el, el.getAttribute("data-refresh")); }, every);
  });
  document.querySelectorAll("[data-check-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      box.form.querySelectorAll("input[name=id]").forEach(function (c) { c.checked = box.checked; });
    });
  });
})();
