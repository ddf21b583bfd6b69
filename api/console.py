"""``/console``: a web console for people who would rather look than read.

One HTML page, one vanilla JS file and one CSS file, all shipped in the package (no build step,
no CDN). The page carries no data and needs no token: the script in the browser asks for a bearer
token, keeps it in ``sessionStorage`` and calls only the public REST API with it, as any other
client would. The page is public and outside the OpenAPI document, like ``/docs``.

Its Content-Security-Policy allows scripts, styles and requests to this origin only, no inline
script or style, no framing, no plugins, and no form posting elsewhere.
"""

from __future__ import annotations

from flask import Blueprint, Response, make_response, render_template

bp = Blueprint("console", __name__)

#: What the console page may load and do: this origin's script, style and API, nothing else.
CONSOLE_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

#: Headers of the console page besides the CSP.
CONSOLE_HEADERS = {
    "Content-Security-Policy": CONSOLE_CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@bp.get("/console")
def console_page() -> Response:
    """The console page (public: it holds no data; the browser brings the token)."""
    response = make_response(render_template("console.html"))
    response.headers.update(CONSOLE_HEADERS)
    return response
