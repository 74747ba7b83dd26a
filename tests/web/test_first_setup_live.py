"""The whole first setup as a new user does it, in a real browser against the real station
(issue 18), and the accessibility check (axe-core, tests/web/axe.py) on every screen.

`python -m firmware --board pc-sim` starts with nothing configured but its loopback ports (as
after `make run`); Kamailio is the house's SIP server and a baresip "flat1" is the phone in the
flat, registered there and answering by hand through its control socket; Debian's chromium is
driven through Playwright:

set the admin password (the setup form; the setup code too if the page asks) → the SIP
server with user and password → registered shown → the call button rings flat1 → flat1 may be
answered → a door code for flat1 → the simulated call button → baresip rings → baresip answers
→ "Open door" on the page, then flat1's door code as DTMF → hang up on the page.

After each step the timeline shows it as a sentence within 1 s (asserted with a 1 s timeout,
counted from the moment the step took effect). Every step is screenshotted at 360×780 and
1280×900 (test-artifacts/first-setup/NN-step-WIDTH.png) and checked with axe-core at both
sizes (test-artifacts/axe/first-setup-NN-step-WIDTH.json). The time from the firmware process
start to the first call answered, as driven by the browser, is printed and written to
test-artifacts/first-setup/timing.json, with the part of it spent on screenshots and axe.

The server-rendered setup and login pages must work without JavaScript: they are checked with
axe and submitted with `java_script_enabled=False` as well as with JavaScript, at both sizes,
including their error states and the setup page that asks for the setup code (as served to a
client that is not on loopback: that page is rendered by firmware/web/pages.py and served in
place of /setup through Playwright's routing, under the station's own security headers).
"""

import shutil

import pytest

from firmware.web import pages
from firmware.web.app import SECURITY_HEADERS
from tests.conftest import ROOT
from tests.integration.helpers import Firmware
from tests.integration.test_web_live import ADMIN_PASSWORD
from tests.peers.process import free_port
from tests.web import axe

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")

ARTIFACTS = ROOT / "test-artifacts" / "first-setup"
SIZES = ((360, 780), (1280, 900))
PASSWORD = ADMIN_PASSWORD  # LiveStation reads the API with it (Basic) for the failure report
DOOR_CODE = "2580"
TIMEOUT_MS = 10000
SENTENCE_MS = 1000  # the timeline shows a step within 1 s
TIMELINE = "#events"
SENTENCES = f"{TIMELINE} .sentence"


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"])
        try:
            yield browser
        finally:
            browser.close()


# -- the server-rendered setup and login pages, with and without JavaScript -----------------

def first_boot_station(workdir):
    port = free_port(("tcp",))
    config = {"sip": {"listen": f"127.0.0.1:{free_port(('udp', 'tcp'))}"},
              "web": {"listen": f"127.0.0.1:{port}"}}
    fw = Firmware(workdir, config).start()
    try:
        fw.wait_log(r"web page on http://", 10)
    except BaseException:
        fw.kill()
        raise
    return fw, f"http://127.0.0.1:{port}"


def serve_setup_page_asking_for_the_code(page, error=None):
    """/setup as the station serves it to a client that is not on loopback."""
    _, _, version = pages.load_static()
    body = pages.setup_page("csrf-token-of-the-test", version, error=error, need_code=True)
    page.route("**/setup", lambda route: route.fulfill(
        status=200, body=body,
        headers={"Content-Type": "text/html; charset=utf-8", **SECURITY_HEADERS}))


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_setup_and_login_pages_are_accessible_and_work(browser, tmp_path, javascript):
    fw, url = first_boot_station(tmp_path / "fw")
    mode = "js" if javascript else "nojs"
    try:
        for width, height in SIZES:
            context = browser.new_context(viewport={"width": width, "height": height},
                                          java_script_enabled=javascript)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url + "/")
            assert page.url == url + "/setup"
            expect(page.get_by_role("heading", name="Set the admin password")).to_be_visible()
            axe.check(page, f"setup-{mode}-{width}", javascript)
            page.get_by_label("New password").fill("aaaaaaaaaaaa")
            page.get_by_label("Repeat the password").fill("aaaaaaaaaaaa")
            page.get_by_role("button", name="Set password").click()
            expect(page.get_by_role("alert")).to_be_visible()
            axe.check(page, f"setup-error-{mode}-{width}", javascript)
            serve_setup_page_asking_for_the_code(page, error="Wrong setup code.")
            page.goto(url + "/setup")
            expect(page.get_by_label("Setup code")).to_be_visible()
            axe.check(page, f"setup-code-{mode}-{width}", javascript)
            context.close()

        # The password set through the form without (or with) JavaScript logs in.
        context = browser.new_context(java_script_enabled=javascript)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url + "/setup")
        page.get_by_label("New password").fill(PASSWORD)
        page.get_by_label("Repeat the password").fill(PASSWORD)
        page.get_by_role("button", name="Set password").click()
        page.wait_for_url(url + "/")
        context.close()

        for width, height in SIZES:
            context = browser.new_context(viewport={"width": width, "height": height},
                                          java_script_enabled=javascript)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url + "/")
            assert page.url == url + "/login"
            axe.check(page, f"login-{mode}-{width}", javascript)
            page.get_by_label("Admin password").fill("not the password")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("alert")).to_have_text("Wrong password.")
            axe.check(page, f"login-error-{mode}-{width}", javascript)
            if width == SIZES[0][0]:  # the check can fail: the same page without its label
                page.evaluate("document.querySelector('label[for=password]').remove()")
                with pytest.raises(AssertionError, match=r"\[critical\] label: "):
                    axe.check(page, f"login-broken-{mode}-{width}", javascript)
                page.goto(url + "/login")
            page.get_by_label("Admin password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(url + "/")
            context.close()
        assert fw.alive
    finally:
        fw.kill()
