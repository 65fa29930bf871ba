/* The dashboard's sections (templates/sections/, blueprints/dashboard/page.py).
 *
 * "section-guard", on each section's wrapper: a request sent from a section that has since
 * been swapped out (a poll in flight when the user moved on) has nowhere to put its
 * answer. htmx would still swap the answer's out-of-band parts and log an error for each
 * target that is gone (htmx:oobErrorNoTarget); the answer is dropped instead. A detached
 * element finds this extension only when its whole section was swapped out: an element
 * replaced inside a section (a card reloading itself) is not affected.
 *
 * The activity panel reloads itself (every minute, after changes) with the filters it was
 * rendered with; while a name typed into "Who" is not yet applied, the reload waits, or it
 * would wipe what is being typed.
 */
(function () {
  "use strict";

  htmx.defineExtension("section-guard", {
    onEvent: function (name, event) {
      return name !== "htmx:beforeOnLoad" || event.detail.elt.isConnected;
    }
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    const panel = event.detail.elt;
    if (panel.id !== "activity") return;
    const who = panel.querySelector("#activity-actor");
    if (who && who.value !== who.defaultValue) event.preventDefault();
  });
}());
