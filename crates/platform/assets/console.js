// Switchyard console: progressive enhancement only; every page works without this file.
// - [data-live="URL"]: the region is re-fetched every few seconds (live status).
// - input[data-instant="ID"]: typing re-fetches region ID with the form's query (instant search)
//   and keeps the address bar in step, so the state stays bookmarkable.
// - a[data-toggle="ID"]: See more / See less switch the row's class without a round trip.
// - button[data-copy="ID"]: copies the text of element ID.
// - form[data-preview="URL"][data-preview-target="ID"]: typing re-fetches region ID from URL
//   with the form's fields (never its CSRF token), e.g. the live example URLs.
"use strict";
(function () {
  var REFRESH_MS = 3000;

  function refresh(region) {
    var url = region.getAttribute("data-live");
    if (!url) { return Promise.resolve(); }
    return fetch(url, { credentials: "same-origin", headers: { "X-Console-Fetch": "1" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined && region.getAttribute("data-live") === url) {
          // Keep keyboard focus on the same control across the replacement.
          var focused = region.contains(document.activeElement) ? document.activeElement.id : "";
          region.innerHTML = html;
          var again = focused && document.getElementById(focused);
          if (again) { again.focus(); }
          region.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () { /* offline for a moment: the next tick retries */ });
  }

  function liveRegions() {
    document.querySelectorAll("[data-live]").forEach(function (region) {
      setInterval(function () { if (!document.hidden) { refresh(region); } }, REFRESH_MS);
    });
  }

  // The region's fetch URL for the page's current query string.
  function syncRegion(region) {
    var base = region.getAttribute("data-live").split("?")[0];
    region.setAttribute("data-live", base + window.location.search);
  }

  function instantSearch() {
    document.querySelectorAll("input[data-instant]").forEach(function (input) {
      var region = document.getElementById(input.getAttribute("data-instant"));
      var form = input.form;
      if (!region || !form) { return; }
      var timer = null;
      function run() {
        var params = new URLSearchParams(new FormData(form));
        if (!params.get("q")) { params.delete("q"); }
        var query = params.toString();
        history.replaceState(null, "", form.getAttribute("action") + (query ? "?" + query : ""));
        syncRegion(region);
        refresh(region);
      }
      input.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(run, 150);
      });
      form.addEventListener("submit", function (e) { e.preventDefault(); clearTimeout(timer); run(); });
    });
  }

  function toggles() {
    document.addEventListener("click", function (e) {
      var link = e.target.closest && e.target.closest("a[data-toggle]");
      if (!link) { return; }
      var row = document.getElementById(link.getAttribute("data-toggle"));
      if (!row) { return; }
      e.preventDefault();
      var expanded = row.classList.toggle("expanded");
      var params = new URLSearchParams(window.location.search);
      if (expanded) { params.set("more", "1"); } else { params.delete("more"); }
      var query = params.toString();
      history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
      var moreField = document.querySelector("#search-form input[name=more]");
      if (expanded && !moreField) {
        var f = document.getElementById("search-form");
        if (f) {
          moreField = document.createElement("input");
          moreField.type = "hidden"; moreField.name = "more"; moreField.value = "1";
          f.appendChild(moreField);
        }
      } else if (!expanded && moreField) {
        moreField.remove();
      }
      var region = row.closest("[data-live]");
      if (region) { syncRegion(region); }
      var other = row.querySelector(expanded ? "a.less" : "a.more");
      if (other) { other.focus(); }
    });
  }

  function copyButtons() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        if (!source || !navigator.clipboard) { return; }
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = "Copy"; }, 2000);
        });
      });
    });
  }

  function previews() {
    document.querySelectorAll("form[data-preview]").forEach(function (form) {
      var region = document.getElementById(form.getAttribute("data-preview-target"));
      if (!region) { return; }
      var timer = null;
      var asked = 0;
      function run() {
        var params = new URLSearchParams(new FormData(form));
        params.delete("csrf");
        var ticket = ++asked;
        fetch(form.getAttribute("data-preview") + "?" + params.toString(),
          { credentials: "same-origin", headers: { "X-Console-Fetch": "1" } })
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) {
            // Only the answer to the latest keystroke is shown.
            if (html !== null && ticket === asked) {
              region.innerHTML = html;
              region.setAttribute("data-refreshed", String(Date.now()));
            }
          })
          .catch(function () { /* the next keystroke retries */ });
      }
      form.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(run, 150);
      });
    });
  }

  document.documentElement.classList.add("js");
  liveRegions();
  instantSearch();
  toggles();
  copyButtons();
  previews();
})();
