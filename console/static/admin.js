/* The administration page's forms are htmx forms (console/admin.py answers each with its
   section re-rendered). When the session ended on the way, the answer sends the browser to
   sign-in (HX-Redirect with expired=1): what was typed is kept first, as console.js keeps the
   other pages' forms, and put back when the person comes back to the page. */
(() => {
  "use strict";
  const C = window.geoConsole;
  document.body.addEventListener("htmx:beforeOnLoad", (event) => {
    const target = event.detail.xhr.getResponseHeader("HX-Redirect") || "";
    if (target.includes("expired=1")) C.keepForms();
  });
  C.pages.admin = C.restoreForms;
})();
