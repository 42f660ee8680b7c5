// The console's own script: the live tail (an EventSource into the records table). The rest
// of the interactivity is htmx attributes in the templates.
(function () {
  "use strict";
  var source = null;
  var KEEP = 200; // rows of a live tail kept on the page

  function stop(button, state) {
    if (source) { source.close(); source = null; }
    button.textContent = "Live tail";
    state.textContent = "";
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-tail]");
    if (!button) return;
    var state = document.getElementById("tail-state");
    var rows = document.getElementById("live");
    if (source) { stop(button, state); return; }
    source = new EventSource(button.dataset.tail);
    button.textContent = "Stop tail";
    state.textContent = "following from the end…";
    source.addEventListener("record", function (message) {
      rows.insertAdjacentHTML("afterbegin", message.data);
      while (rows.rows.length > KEEP) rows.deleteRow(rows.rows.length - 1);
      state.textContent = "following: " + rows.rows.length + " new record(s)";
    });
    source.onerror = function () { state.textContent = "reconnecting…"; };
  });
})();
