"""End to end in a real browser: a counsellor signs in, takes consent, fills the
statement, attaches a file, submits, sees the receipt and saves it.

Headless Chromium (Debian's ``chromium``) is driven over the DevTools protocol
(``cdp_client.py``) against ``intake serve`` (uvicorn) on 127.0.0.1. The test
then checks on the server side that a sealed statement exists: its receipt
through the API, and its ciphertext opened with the investigator's key, to
find exactly what was typed and only the bodies answered yes.

Without chromium the test is skipped locally and FAILS in CI (``CI=true``).
Set ``INTAKE_BROWSER_SCREENSHOTS=DIR`` to keep the two screenshots.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cdp_client import Cdp

pytestmark = pytest.mark.browser

INTAKE = Path(sys.executable).parent / "intake"
PASSWORD = "correct horse battery staple"
WITNESS = "မောင်မောင်ဦး"  # a Burmese name
STATEMENT = "ကျွန်တော်သည် ၂၀၂၁ ခုနှစ် မတ်လတွင် တပ်ရင်းမှ ထွက်ခွာခဲ့ပါသည်။\nSecond line in English."
ATTACHMENT = b"%PDF-1.4 not really a pdf, but bytes to seal\n" * 40
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--mute-audio",
    "--window-size=1280,1000", "--remote-debugging-port=0",
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        message = "chromium is not installed (Debian: apt-get install -y chromium)"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@dataclass
class Node:
    url: str
    data: Path
    token: str
    un_id: str
    icc_id: str
    un_identity: Any


def _seed(data: Path) -> tuple[str, str, str, Any]:
    """A counsellor (password and API token) and two bodies with one key each."""
    from evidence_intake.crypto.age import X25519Identity
    from evidence_intake.service.auth.accounts import create_account, create_api_token
    from evidence_intake.service.db import Database
    from evidence_intake.service.models.accounts import Role
    from evidence_intake.service.recipient_sets import add_recipient, create_body
    from evidence_intake.service.settings import load_settings

    settings = load_settings(data, argon2_opslimit=1, argon2_memlimit=8192)
    database = Database.from_settings(settings)
    un_identity = X25519Identity.generate()
    try:
        with database.session() as session:
            admin = create_account(session, settings, actor="system", username="root",
                                   role=Role.admin, password=PASSWORD)
            thida = create_account(session, settings, actor="system", username="thida",
                                   role=Role.counsellor, password=PASSWORD)
            session.commit()
            token = create_api_token(session, actor="system", account_id=thida.id,
                                     name="browser test").token
            ids = []
            for name, identity in (("UN Myanmar mechanism", un_identity),
                                   ("ICC Office of the Prosecutor", X25519Identity.generate())):
                body = create_body(session, actor=admin.id, name=name, description="")
                session.flush()
                add_recipient(session, settings, actor=admin.id, body_id=body.id,
                              organisation=name, person="Investigator",
                              recipient=str(identity.recipient))
                ids.append(body.id)
            session.commit()
    finally:
        database.dispose()
    return token, ids[0], ids[1], un_identity


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    data = tmp_path / "var"
    env = {**os.environ, "INTAKE_DATA_DIR": str(data)}
    env.pop("INTAKE_DATABASE_URL", None)
    subprocess.run([str(INTAKE), "init", "--data-dir", str(data)], env=env, check=True,
                   capture_output=True, timeout=120)
    token, un_id, icc_id, un_identity = _seed(data)
    port = _free_port()
    proc = subprocess.Popen(
        [str(INTAKE), "serve", "--data-dir", str(data), "--host", "127.0.0.1",
         "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    # http://localhost is a secure context to Chromium, so the production
    # cookie settings (__Host- prefix, Secure) work here unchanged.
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError("intake serve did not start")
            time.sleep(0.1)
        yield Node(url, data, token, un_id, icc_id, un_identity)
    finally:
        _stop(proc)


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[Cdp]:
    profile = tmp_path / "profile"
    profile.mkdir()
    proc = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    cdp = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            targets = json.load(answer)
        page = next(t for t in targets if t["type"] == "page")
        cdp = Cdp(page["webSocketDebuggerUrl"])
        yield cdp
    finally:
        if cdp is not None:
            cdp.close()
        _stop(proc)


# ------------------------------------------------------------------ helpers


def _js(value: str) -> str:
    return json.dumps(value)


def type_into(cdp: Cdp, selector: str, text: str) -> None:
    """Focus the field and type, as a keyboard (or an IME) would."""
    assert cdp.evaluate(f"(() => {{ const e = document.querySelector({_js(selector)});"
                        " e.focus(); return document.activeElement === e; })()")
    cdp.send("Input.insertText", text=text)


def choose(cdp: Cdp, selector: str, value: str) -> None:
    cdp.evaluate(f"(() => {{ const e = document.querySelector({_js(selector)}); e.value = "
                 f"{_js(value)}; e.dispatchEvent(new Event('change', {{bubbles: true}})); }})()")


def press(cdp: Cdp, key: str, code: str, keycode: int, text: str = "") -> None:
    for kind in ("keyDown", "keyUp"):
        extra = {"text": text} if text and kind == "keyDown" else {}
        cdp.send("Input.dispatchKeyEvent", type=kind, key=key, code=code,
                 windowsVirtualKeyCode=keycode, **extra)


def click(cdp: Cdp, selector: str) -> None:
    cdp.evaluate(f"document.querySelector({_js(selector)}).click()")


def screenshot(cdp: Cdp, path: Path) -> None:
    metrics = cdp.send("Page.getLayoutMetrics")["cssContentSize"]
    shot = cdp.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                    clip={"x": 0, "y": 0, "width": metrics["width"],
                          "height": metrics["height"], "scale": 1})
    path.write_bytes(base64.b64decode(shot["data"]))
    keep = os.environ.get("INTAKE_BROWSER_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def visible(selector: str) -> str:
    return f"(e => Boolean(e && !e.hidden))(document.querySelector({_js(selector)}))"


# --------------------------------------------------------------------- test


def test_counsellor_submits_a_statement_in_the_browser(node: Node, browser: Cdp,
                                                       tmp_path: Path) -> None:
    cdp = browser
    evidence = tmp_path / "evidence-scan.pdf"
    evidence.write_bytes(ATTACHMENT)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    cdp.send("Page.enable")
    cdp.send("Runtime.enable")
    cdp.send("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
    # Record every Content-Security-Policy violation the page causes.
    # And every text the upload progress shows (the form clears it afterwards).
    cdp.send("Page.addScriptToEvaluateOnNewDocument", source=(
        "window.__csp = []; document.addEventListener('securitypolicyviolation',"
        " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
        "window.__progress = []; document.addEventListener('DOMContentLoaded', () => {"
        " const node = document.getElementById('progress-text');"
        " new MutationObserver(() => window.__progress.push(node.textContent))"
        ".observe(node, {childList: true, characterData: true, subtree: true}); });"))
    cdp.send("Page.navigate", url=f"{node.url}/counsellor")
    cdp.wait_for(visible("#login-section"))

    # 1. Sign in with the keyboard: type, then Enter submits the form.
    type_into(cdp, "#login-username", "thida")
    type_into(cdp, "#login-password", PASSWORD)
    press(cdp, "Enter", "Enter", 13, "\r")
    cdp.wait_for(visible("#statement-section"))
    assert cdp.evaluate("document.getElementById('who').textContent") == "thida (counsellor)"
    assert cdp.wait_for("document.querySelectorAll('#bodies .body-card').length") == 2

    # 2. Submitting an empty form sends nothing and names what is missing.
    click(cdp, "#submit")
    cdp.wait_for(visible("#problem"))
    problem = cdp.evaluate("document.getElementById('problem').textContent")
    assert "The statement is not complete" in problem
    for missing in ("Name", "storage", "receiving bodies", "Statement, as the witness gave it"):
        assert missing in problem, missing
    assert cdp.evaluate("document.activeElement.id") == "problem"

    # 3. Consent, one answer per purpose; a radio answered with the keyboard.
    cdp.evaluate("document.getElementById('consent-storage-yes').focus()")
    press(cdp, " ", "Space", 32, " ")
    assert cdp.evaluate("document.getElementById('consent-storage-yes').checked")
    for purpose, answer in (("risks_explained", "yes"), ("withdrawal_explained", "yes"),
                            ("identity_disclosure_to_court", "no"),
                            ("willingness_to_testify", "yes"),
                            ("publication_or_advocacy", "no")):
        click(cdp, f"#consent-{purpose}-{answer}")
    click(cdp, f"#share-{node.un_id}-yes")
    click(cdp, f"#onward-{node.un_id}-yes")
    click(cdp, f"#share-{node.icc_id}-no")
    click(cdp, f"#onward-{node.icc_id}-no")
    type_into(cdp, "#consent-taken-by", "Counsellor Thida\nCounsellor Aye")
    # The list of what is missing shrinks as the counsellor fills the form.
    problem = cdp.evaluate("document.getElementById('problem').textContent")
    assert "storage" not in problem and "receiving bodies" not in problem
    assert "Name" in problem

    # 4. The sealed record.
    type_into(cdp, "#witness-name", WITNESS)
    type_into(cdp, "#witness-dob", "1994-03")
    type_into(cdp, "#service-unit", "Light Infantry Battalion 000")
    type_into(cdp, "#service-rank", "Corporal")
    choose(cdp, "#interview-started", "2026-11-28T10:30")
    type_into(cdp, "#interview-place", "Safe house B")
    type_into(cdp, "#interview-interviewers", "Thida")
    type_into(cdp, "#interview-language-pair", "my-en")
    click(cdp, "#add-incident")
    type_into(cdp, ".incident [id$='-occurred']", "2021-03")
    type_into(cdp, ".incident [id$='-description']", "ရွာကို မီးရှို့ခဲ့သည်။")
    choose(cdp, "#follow-testify", "undecided")
    choose(cdp, "#risk-level", "high")
    type_into(cdp, "#risk-assessment", "Family still in the unit's area.")
    type_into(cdp, "#statement-text", STATEMENT)
    document = cdp.send("DOM.getDocument")["root"]["nodeId"]
    file_input = cdp.send("DOM.querySelector", nodeId=document, selector="#attachments")
    cdp.send("DOM.setFileInputFiles", nodeId=file_input["nodeId"], files=[str(evidence)])
    cdp.wait_for("document.querySelectorAll('#attachment-list li').length === 1")
    assert cdp.evaluate("document.getElementById('statement-text').lang") == "my"
    assert cdp.evaluate("document.getElementById('problem').hidden")
    screenshot(cdp, tmp_path / "counsellor-filled.png")

    # 5. The session ends behind the page's back (idle limit, say): the submission
    # is refused, the page asks to sign in again and keeps every entry.
    assert cdp.evaluate(
        "fetch('/api/v1/auth/logout', {method: 'POST', headers: {'X-CSRF-Token':"
        " document.cookie.match(/intake_csrf=([^;]+)/)[1]}}).then(r => r.status)") == 204
    click(cdp, "#submit")
    cdp.wait_for(visible("#login-section"))
    assert not cdp.evaluate(visible("#statement-section"))
    type_into(cdp, "#login-username", "thida")
    type_into(cdp, "#login-password", PASSWORD)
    press(cdp, "Enter", "Enter", 13, "\r")
    cdp.wait_for(visible("#statement-section"))
    assert cdp.evaluate("document.getElementById('witness-name').value") == WITNESS
    assert cdp.evaluate(f"document.getElementById('share-{node.un_id}-yes').checked")
    assert cdp.evaluate("document.getElementById('attachments').files.length") == 1

    # 6. Submit; the receipt replaces the form, which is cleared.
    assert not cdp.evaluate(visible("#receipt-section"))
    click(cdp, "#submit")
    cdp.wait_for(visible("#receipt-section"), timeout=60)
    statement_id = cdp.evaluate("document.getElementById('r-id').textContent")
    assert cdp.evaluate("document.getElementById('problem').hidden")
    for field in ("#witness-name", "#statement-text", "#consent-taken-by", "#attachments"):
        assert cdp.evaluate(f"document.querySelector({_js(field)}).value") == "", field
    assert cdp.evaluate("document.querySelectorAll('#bodies input:checked').length") == 0
    assert cdp.evaluate("localStorage.length + sessionStorage.length") == 0
    assert cdp.evaluate("document.getElementById('status').textContent") == \
        f"Sealed: statement {statement_id}."
    progress = cdp.evaluate("window.__progress")
    assert any(re.fullmatch(r"\d{1,3} % of \d+\.\d KiB", text) for text in progress), progress
    assert "sent; sealing…" in progress
    cdp.wait_for(f"document.getElementById('list-body').textContent.includes({_js(statement_id)})")
    screenshot(cdp, tmp_path / "counsellor-receipt.png")

    click(cdp, "#save-receipt")
    saved = downloads / f"receipt-{statement_id}.json"
    deadline = time.monotonic() + 20
    while not saved.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    page_receipt = json.loads(saved.read_text(encoding="utf-8"))

    # 7. A new statement starts from an empty form; signing out ends the session.
    click(cdp, "#new-statement")
    cdp.wait_for(visible("#statement-section"))
    assert not cdp.evaluate(visible("#receipt-section"))
    assert cdp.evaluate("document.getElementById('statement-text').value") == ""
    click(cdp, "#sign-out")
    cdp.wait_for(visible("#login-section"))
    assert not cdp.evaluate(visible("#statement-section"))
    assert "intake_csrf" not in cdp.evaluate("document.cookie")

    assert cdp.evaluate("window.__csp") == []
    exceptions = [e for e in cdp.events if e["method"] == "Runtime.exceptionThrown"]
    assert exceptions == []

    # 8. On the server: the receipt, and the sealed record opened by the body's key.
    headers = {"Authorization": f"Bearer {node.token}"}
    api = node.url.replace("localhost", "127.0.0.1")
    receipt = httpx.get(f"{api}/api/v1/statements/{statement_id}/receipt", headers=headers,
                        timeout=10).json()
    assert receipt["status"] == "active"
    assert {k: v for k, v in receipt.items() if k != "checkpoint"} == \
        {k: v for k, v in page_receipt.items() if k != "checkpoint"}
    (copy,) = receipt["copies"]
    assert copy["bodies"] == [node.un_id]
    record = _open(node, copy["statement"]["sha256"])
    sealed = record["sealed"]
    assert sealed["witness"]["name"] == WITNESS
    assert sealed["statement"]["unicode"] == STATEMENT
    assert sealed["incidents"][0]["description"] == "ရွာကို မီးရှို့ခဲ့သည်။"
    assert sealed["interview"]["interviewers"] == ["Thida"]
    consent = sealed["consent"]
    assert consent["storage"]["answer"] == "yes"
    assert consent["identity_disclosure_to_court"]["answer"] == "no"
    assert {(s["body_id"], s["answer"]) for s in consent["sharing"]} == \
        {(node.un_id, "yes"), (node.icc_id, "no")}
    assert consent["taken_by"] == ["Counsellor Thida", "Counsellor Aye"]
    assert [b["body_id"] for b in record["routing"]["bodies"]] == [node.un_id]
    assert record["routing"]["language"] == "my"
    (meta,) = sealed["attachments"]
    assert (meta["filename"], meta["size"]) == ("evidence-scan.pdf", len(ATTACHMENT))
    assert _open_bytes(node, copy["attachments"][0]["sha256"]) == ATTACHMENT


def _open_bytes(node: Node, digest: str) -> bytes:
    import io

    from evidence_intake.crypto.age import decrypt
    from evidence_intake.service.intake.blobstore import FilesystemBlobStore
    from evidence_intake.service.settings import load_settings

    store = FilesystemBlobStore(load_settings(node.data).blob_path)
    out = io.BytesIO()
    with store.open(digest) as src:
        decrypt(src, out, [node.un_identity])
    return out.getvalue()


def _open(node: Node, digest: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(_open_bytes(node, digest))
    return record
