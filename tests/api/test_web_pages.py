"""The counsellors' web page and its assets: headers, allow-list, role rules.

The page handles a witness's statement in the browser, so every response that
makes it up must carry the strict policy (script and style from this origin
only, no inline code, Trusted Types, connections to this origin only) and
``Cache-Control: no-store``. The markup itself must not undo the policy (no
inline script, style or event handler) and must keep the browser's autofill
store away from the witness's fields.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from evidence_intake.service.routes.pages import APP_CSP, ASSETS
from intake_api_support import PASSWORD, Api

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])

PAGE_PATHS = ("/counsellor", *(f"/static/{name}" for name in ASSETS))


def _directives(policy: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in policy.split(";"):
        name, *values = item.split()
        out[name] = values
    return out


def test_policy_allows_nothing_inline_nor_foreign(api: Api) -> None:
    policy = _directives(api.client.get("/counsellor").headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    for directive in ("script-src", "style-src", "connect-src"):
        assert policy[directive] == ["'self'"], directive
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["require-trusted-types-for"] == ["'script'"]
    joined = " ".join(v for values in policy.values() for v in values)
    for loosening in ("'unsafe-inline'", "'unsafe-eval'", "data:", "blob:", "*", "http:"):
        assert loosening not in joined.split(), loosening


@pytest.mark.parametrize("path", PAGE_PATHS)
def test_page_and_assets_carry_the_policy_and_are_never_cached(api: Api, path: str) -> None:
    response = api.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == APP_CSP
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cross-origin-opener-policy"] == "same-origin"
    assert response.headers["cross-origin-resource-policy"] == "same-origin"


def test_assets_have_the_media_types_module_scripts_need(api: Api) -> None:
    # With nosniff, a module script or stylesheet with another type is refused.
    page = api.client.get("/counsellor")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    script = api.client.get("/static/counsellor.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    style = api.client.get("/static/counsellor.css")
    assert style.headers["content-type"] == "text/css; charset=utf-8"


@pytest.mark.parametrize("name", [
    "counsellor.html",  # served at /counsellor only
    "..%2Fapp.py", "%2e%2e%2fapp.py", "__init__.py", "missing.js", "COUNSELLOR.JS",
])
def test_static_serves_the_allow_list_only(api: Api, name: str) -> None:
    response = api.client.get(f"/static/{name}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "app.py" not in response.text


def test_path_traversal_outside_static_is_not_routed(api: Api) -> None:
    assert api.client.get("/static/../app.py").status_code == 404
    assert api.client.get("/static/sub/counsellor.js").status_code == 404


class _Markup(HTMLParser):
    """Collects what the policy would block, and the form controls."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts = 0
        self.inline_styles = 0
        self.handlers: list[str] = []
        self.style_attributes = 0
        self.external: list[str] = []
        self.controls: list[dict[str, str | None]] = []
        self.labels: set[str] = set()
        self.html_lang: str | None = None
        self._in_script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.html_lang = values.get("lang")
        if tag == "script":
            self._in_script_without_src = "src" not in values
        if tag == "style":
            self.inline_styles += 1
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        self.style_attributes += "style" in values
        for name in ("src", "href"):
            url = values.get(name) or ""
            if re.match(r"^(https?:)?//", url):
                self.external.append(url)
        if tag in {"input", "select", "textarea"}:
            self.controls.append({"tag": tag, **values})
        if tag == "label" and values.get("for"):
            self.labels.add(str(values["for"]))

    def handle_data(self, data: str) -> None:
        if self._in_script_without_src and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script_without_src = False


def _markup(api: Api) -> _Markup:
    parser = _Markup()
    parser.feed(api.client.get("/counsellor").text)
    return parser


def test_markup_has_no_inline_code_and_loads_nothing_foreign(api: Api) -> None:
    markup = _markup(api)
    assert markup.inline_scripts == 0
    assert markup.inline_styles == 0
    assert markup.style_attributes == 0
    assert markup.handlers == []
    assert markup.external == []
    assert markup.html_lang == "en"


def test_every_control_has_a_label(api: Api) -> None:
    markup = _markup(api)
    unlabelled = [c.get("id") for c in markup.controls
                  if c.get("type") not in {"hidden"} and c.get("id") not in markup.labels]
    assert unlabelled == []


def test_witness_fields_keep_out_of_autofill_and_spell_checkers(api: Api) -> None:
    page = api.client.get("/counsellor").text
    assert re.search(r'<form id="statement-form"[^>]*autocomplete="off"', page)
    markup = _markup(api)
    content = [c for c in markup.controls if "content" in str(c.get("class") or "").split()]
    assert len(content) >= 15
    assert [c["id"] for c in content if c.get("spellcheck") != "false"] == []


def test_script_never_touches_web_storage_nor_builds_html(api: Api) -> None:
    source = api.client.get("/static/counsellor.js").text
    script = re.sub(r"^\s*//.*$", "", source, flags=re.MULTILINE)  # comments may name them
    assert len(script) > len(source) // 2
    for forbidden in ("localStorage", "sessionStorage", "indexedDB", "innerHTML", "outerHTML",
                      "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert forbidden not in script, forbidden
    # The CSRF token travels in the header the API checks.
    assert '"X-CSRF-Token"' in script


def test_burmese_font_stack_names_myanmar_fonts(api: Api) -> None:
    style = api.client.get("/static/counsellor.css").text
    assert re.search(r'--myanmar: "Intake Myanmar", "Padauk", "Noto Sans Myanmar"', style)
    assert re.search(r'src: local\("Padauk"\).*unicode-range: U\+1000-109F', style, re.DOTALL)
    assert ":lang(my)" in style


def test_the_front_page_links_the_counsellors_page(api: Api) -> None:
    assert 'href="/counsellor"' in api.client.get("/").text


def test_the_page_shell_holds_no_account_data(api: Api) -> None:
    # Public by design: what a signed-in counsellor sees comes from the API.
    _, username = api.create_account("counsellor")
    signed_in = api.client.post("/api/v1/auth/login",
                                json={"username": username, "password": PASSWORD})
    assert signed_in.status_code == 200
    page = api.client.get("/counsellor")
    assert page.status_code == 200
    assert username not in page.text
