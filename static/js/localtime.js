/* Shows UTC instants in the viewer's time zone.
 *
 * The server renders <time datetime="2026-11-27T01:00:00.000Z" data-localtime> with UTC text;
 * this rewrites the text as "Thu 2026-11-26 20:00 EST" in the browser's zone, with the zone's
 * abbreviation, and puts the zone's name in the title. It runs on page load and on every
 * piece of content htmx swaps in. Loaded with <script src>; the page has no inline script.
 */
(function () {
  "use strict";

  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  // English digits and weekday like the rest of the page; the zone's abbreviation as the
  // viewer's own locale writes it ("EST", "CET", "GMT+1").
  var clock = new Intl.DateTimeFormat("en-US", {
    weekday: "short", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23"
  });
  var zoneName = new Intl.DateTimeFormat(undefined, {timeZoneName: "short"});

  function parts(formatter, date) {
    var found = {};
    formatter.formatToParts(date).forEach(function (part) { found[part.type] = part.value; });
    return found;
  }

  function text(date) {
    var p = parts(clock, date);
    return p.weekday + " " + p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" +
      p.minute + " " + parts(zoneName, date).timeZoneName;
  }

  function localize(root) {
    if (!root || !root.querySelectorAll) return;
    var found = Array.prototype.slice.call(root.querySelectorAll("time[data-localtime]"));
    if (root.matches && root.matches("time[data-localtime]")) found.push(root);
    found.forEach(function (element) {
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      element.textContent = text(date);
      element.title = "Your time (" + zone + ")";
      element.classList.add("localized");
    });
  }

  localize(document);
  document.addEventListener("htmx:load", function (event) { localize(event.target); });
  document.addEventListener("htmx:afterSettle", function (event) { localize(event.target); });
}());
