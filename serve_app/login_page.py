"""The web login: ``/login`` (name and password) and ``/setup`` (a setup or invite link: choose a
password), plain pages in front of the Gradio UI, which reads the session the door identified.

``CSRF_SCRIPT`` goes into the UI's ``<head>``: it adds the session's CSRF token (the readable
``maos_csrf`` cookie) to every state-changing request the page makes (``fetch`` and
``XMLHttpRequest``), so Gradio's own posts pass the door's CSRF check.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from serve_app.callers import PUBLIC

CSRF_SCRIPT = """<script>
(() => {
  const token = () => (document.cookie.match(/(?:^|; )maos_csrf=([^;]*)/) || [])[1] || "";
  const safe = (m) => ["GET", "HEAD", "OPTIONS"].includes((m || "GET").toUpperCase());
  const own = (u) => { try { return new URL(u, location.href).origin === location.origin; } catch (e) { return false; } };
  const fetch0 = window.fetch;
  window.fetch = function (input, init) {
    const url = typeof input === "string" || input instanceof URL ? String(input) : input.url;
    const method = (init && init.method) || (input instanceof Request ? input.method : "GET");
    if (!safe(method) && own(url)) {
      init = Object.assign({}, init || {});
      const h = new Headers(init.headers || (input instanceof Request ? input.headers : undefined));
      h.set("X-CSRF-Token", token());
      init.headers = h;
    }
    return fetch0.call(this, input, init);
  };
  const open0 = XMLHttpRequest.prototype.open, send0 = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    this._maos = !safe(method) && own(url);
    return open0.call(this, method, url, ...rest);
  };
  XMLHttpRequest.prototype.send = function (body) {
    if (this._maos) this.setRequestHeader("X-CSRF-Token", token());
    return send0.call(this, body);
  };
})();
</script>"""

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} · Master Agent OS</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;background:#f5f5fa;display:flex;justify-content:center;padding-top:10vh}}
form{{background:#fff;padding:2rem;border-radius:12px;box-shadow:0 2px 12px #0002;width:20rem;display:flex;flex-direction:column;gap:.8rem}}
input,button{{font-size:1rem;padding:.55rem;border-radius:6px;border:1px solid #ccd}}button{{background:#4f46e5;color:#fff;border:0}}
#error{{color:#b00020;min-height:1.2em}}</style></head><body>
<form id="form"><h2>{title}</h2><p>{intro}</p>{fields}<button type="submit">{button}</button><div id="error" role="alert"></div></form>
<script>
document.getElementById("form").addEventListener("submit", async (e) => {{
  e.preventDefault();
  const f = new FormData(e.target), body = {{}};
  for (const [k, v] of f.entries()) body[k] = v;
  {extra}
  const r = await fetch("{action}", {{method: "POST", headers: {{"Content-Type": "application/json"}}, body: JSON.stringify(body)}});
  if (r.ok) {{ location.href = "/"; return; }}
  let detail = "could not log in"; try {{ const j = await r.json(); detail = typeof j.detail === "string" ? j.detail : detail; }} catch (x) {{}}
  document.getElementById("error").textContent = detail;
}});
</script></body></html>"""

LOGIN_HTML = _PAGE.format(
    title="Log in", intro="Your name and password (or the install's login token, as the admin).",
    fields='<input type="text" name="name" placeholder="Name" autocomplete="username" required>'
           '<input type="password" name="password" placeholder="Password" autocomplete="current-password" required>',
    button="Login", action="/api/auth/login", extra="")
SETUP_HTML = _PAGE.format(
    title="Set your password", intro="Choose a password (8 characters or more) for your account.",
    fields='<input type="password" name="password" placeholder="New password" autocomplete="new-password" '
           'minlength="8" required>',
    button="Set password", action="/api/auth/accept",
    extra='body.token = decodeURIComponent(location.hash.slice(1));')


def build_login_pages() -> APIRouter:
    r = APIRouter(include_in_schema=False, dependencies=[PUBLIC])

    @r.get("/login")
    async def login_page() -> HTMLResponse:
        return HTMLResponse(LOGIN_HTML)

    @r.get("/setup")
    async def setup_page() -> HTMLResponse:
        return HTMLResponse(SETUP_HTML, headers={"Referrer-Policy": "no-referrer"})

    return r
