"""HTML pages: the front page, and the counsellors' web page with its two assets.

The front page has no script, no form and no external resource: a strict
Content-Security-Policy forbids all of them, so it cannot become an injection
point.

The counsellors' page (``/counsellor``) is a static shell: HTML, one
stylesheet and one JavaScript module from ``service/static/``, served from an
allow-list (no path from the request ever reaches the file system). Threat
model: the page handles a defector's name and statement in the browser, so
(1) its policy allows script and style from this origin only, with no inline
code, no ``eval`` and Trusted Types required (DOM text is set with
``textContent``, never parsed as HTML), so injected markup cannot run; (2) it
may connect to this origin only, so a bug cannot post the statement anywhere
else; (3) nothing is cached (``no-store``), and the page is never framed. The
shell holds no data, so it is public: every datum comes from the API, which
enforces the roles (the page asks ``/api/v1/auth/me`` and shows the form to a
counsellor only).
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from typing import Annotated, Final

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response

from ... import __version__
from ..auth.rules import public
from ..deps import SettingsDep
from ..errors import NotFoundError

router = APIRouter(tags=["pages"])

_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>evidence-intake</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em}}
code{{background:#f2f2f2;padding:0 .2em}}</style></head>
<body><h1>evidence-intake {version}</h1>
<p>Witness statements are sealed with age, on arrival, to the investigators the
witness consented to. Nobody at this node can read them afterwards.</p>
<ul>
<li><a href="/counsellor">Counsellors: record and submit a statement</a></li>
{docs}<li><a href="/api/v1/health">Health</a></li>
</ul>
<p>First administrator, on the server: <code>intake admin create-user --role admin NAME</code></p>
<p>Scripts and the <code>intake submit</code> command use a personal API token:
<code>intake admin create-token NAME</code> or <code>POST /api/v1/auth/tokens</code>.</p>
</body></html>
"""


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def front_page(_rule: Annotated[None, Depends(public())], settings: SettingsDep) -> HTMLResponse:
    """Public: names the service and links the API documentation."""
    docs = ('<li><a href="/docs">API documentation (OpenAPI)</a></li>\n'
            if settings.openapi_docs else "")
    body = _PAGE.format(version=html.escape(__version__), docs=docs)
    return HTMLResponse(body, headers={"Content-Security-Policy": _CSP})


# The counsellors' page: script, style and connections to this origin only.
APP_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'"
)
APP_HEADERS: Final = {
    "Content-Security-Policy": APP_CSP,
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
# File name -> media type: the only files /static/ serves.
ASSETS: Final = {
    "counsellor.css": "text/css; charset=utf-8",
    "counsellor.js": "text/javascript; charset=utf-8",
}
_PAGE_FILE: Final = "counsellor.html"


@cache
def _static_file(name: str) -> bytes:
    """The packaged file ``service/static/NAME`` (read once per process)."""
    package = __package__.rpartition(".")[0]  # evidence_intake.service
    return resources.files(package).joinpath("static", name).read_bytes()


@router.get("/counsellor", response_class=HTMLResponse, include_in_schema=False)
def counsellor_page(_rule: Annotated[None, Depends(public())]) -> Response:
    """Public shell (no data in it): sign-in, consent, statement form, receipts."""
    return Response(_static_file(_PAGE_FILE), media_type="text/html; charset=utf-8",
                    headers=APP_HEADERS)


@router.get("/static/{asset}", include_in_schema=False)
def static_asset(asset: str, _rule: Annotated[None, Depends(public())]) -> Response:
    """Public: the page's stylesheet and script, from the allow-list only."""
    media_type = ASSETS.get(asset)
    if media_type is None:
        raise NotFoundError("no such file")
    return Response(_static_file(asset), media_type=media_type, headers=APP_HEADERS)
