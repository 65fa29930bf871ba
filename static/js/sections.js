/* The dashboard's sections (templates/sections/, blueprints/dashboard/page.py).
 *
 * "section-guard", on each section's wrapper: a request sent from a section that has since
 * been swapped out (a poll in flight when the user moved on) has nowhere to put its
 * answer. htmx would still swap the answer's out-of-band parts and log an error for each
 * target that is gone (htmx:oobErrorNoTarget); the answer is dropped instead. A detached
 * element finds this extension only when its whole section was swapped out: an element
 * replaced inside a section (a card reloading itself) is not affected.
 */
(function () {
  "use strict";

  htmx.defineExtension("section-guard", {
    onEvent: function (name, event) {
      return name !== "htmx:beforeOnLoad" || event.detail.elt.isConnected;
    }
  });
}());
