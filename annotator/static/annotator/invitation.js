// An invitation link carries its token after "#" (/invite/#<uidb64>/<token>): browsers never
// send that part to a server, so no access log holds it. Post it, and clear it from the
// address bar and the history.
(function () {
  "use strict";
  const form = document.getElementById("invitation-open");
  if (!form) return;
  const [uidb64, token] = decodeURIComponent(window.location.hash.slice(1)).split("/");
  history.replaceState(null, "", window.location.pathname + window.location.search);
  if (!uidb64 || !token) {
    document.getElementById("invitation-missing").hidden = false;
    form.hidden = true;
    return;
  }
  form.elements.uidb64.value = uidb64;
  form.elements.token.value = token;
  form.submit();
})();
