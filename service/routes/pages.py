"""A minimal HTML front page: what this is and where to go (the API does the work).

No script, no form, no external resource: a strict Content-Security-Policy
forbids all of them, so the page cannot become an injection point.
"""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from ... import __version__
from ..auth.rules import public
from ..deps import SettingsDep

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
