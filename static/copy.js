// A copy button for text shown once (a new API key's secret): plain script, no CDN.
// <button type="button" data-copy="ELEMENT-ID" data-copied="words to announce">
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) return;
  var source = document.getElementById(button.getAttribute("data-copy"));
  var status = document.getElementById(button.getAttribute("data-status"));
  var text = source ? source.textContent.trim() : "";
  function done() { if (status) status.textContent = button.getAttribute("data-copied"); }
  function fallback() {
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try { if (document.execCommand("copy")) done(); } catch (e) { /* left selected: Ctrl+C */ }
  }
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, fallback);
  } else {
    fallback();
  }
});
