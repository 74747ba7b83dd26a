"""The page in a real browser against the real firmware process and real peers (issue 6).

tests/web/test_browser.py drives the page against a FakeStation; here Debian's chromium (through
Playwright) talks to `python -m firmware --board pc-sim`, registered at Kamailio, and the test
call rings a baresip "flat1" registered there too:

first-boot password → log out and in → set the call button's target in the settings form and
save (the file on disk and a reload show it) → "Test call" → the status panel shows the call
ringing, then active with live audio statistics (packet counts that grow between two polls) →
"Hang up" → the event log lists the call. Screenshots go to test-artifacts/live/.

flat1 answers by hand (the test accepts through baresip's control socket once the page shows
the call ringing): an auto-answering phone on loopback answers within a millisecond, far
below the page's 1.5 s polling, so no state before "active" could ever be seen on the page.
"""

import re
import shutil
import tomllib

import pytest

from tests.conftest import ROOT
from tests.integration.helpers import station_config
from tests.integration.test_web_live import ADMIN_PASSWORD, LiveStation
from tests.peers.fixtures import FLAT1_USER

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
CHROMIUM = shutil.which("chromium")
pytestmark = [pytest.mark.peers,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")]

ARTIFACTS = ROOT / "test-artifacts" / "live"
PASSWORD = ADMIN_PASSWORD  # so LiveStation can use the API with Basic afterwards
FLAT1 = "sip:flat1@127.0.0.1"
TIMEOUT_MS = 10000
# Records every call state the status panel shows, in order (the page redraws #st-calls on
# each poll; consecutive repeats are folded).
RECORD_STATES = """() => {
  window.seenStates = [];
  new MutationObserver(() => {
    document.querySelectorAll('#st-calls .call-state').forEach((node) => {
      const seen = window.seenStates;
      if (seen[seen.length - 1] !== node.textContent) seen.push(node.textContent);
    });
  }).observe(document.getElementById('st-calls'), {childList: true, subtree: true});
}"""


@pytest.fixture
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"])
        try:
            yield browser
        finally:
            browser.close()


def packets_received(page):
    """The packets_received figure of the call shown in the status panel."""
    text = page.locator("#st-calls .call .muted").first.text_content()
    match = re.search(r"packets_received (\d+)", text)
    assert match, f"no packets_received in the call's statistics: {text!r}"
    return int(match.group(1))


def test_first_boot_settings_and_test_call_against_the_real_station(
        browser, kamailio, baresip_factory, tmp_path):
    phone = baresip_factory(FLAT1_USER, registrar=kamailio, answer_mode="manual")
    phone.wait_registered(5.0)
    station = LiveStation(tmp_path / "station", station_config(kamailio, "udp")).start()
    try:
        run_browser_session(browser, station, phone)
    finally:
        station.fw.kill()
        print(f"--- station ---{station.describe(80)}")


def run_browser_session(browser, station, phone):
    url = "http://%s:%d" % station.web
    context = browser.new_context(viewport={"width": 1000, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    csp_errors = []
    page.on("console", lambda m: "Content Security Policy" in m.text and csp_errors.append(m.text))

    # First boot: the page leads to the password form; setting it logs in.
    page.goto(url + "/")
    assert page.url == url + "/setup"
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.screenshot(path=str(ARTIFACTS / "01-first-boot-setup.png"))
    page.get_by_role("button", name="Set password").click()
    page.wait_for_url(url + "/")
    expect(page.locator("#st-reg")).to_have_text("registered")
    assert [e["type"] for e in station.events()].count("admin_password_set") == 1

    # Log out and in again with the password just set.
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(url + "/login")
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url + "/")
    expect(page.locator("#st-reg")).to_have_text("registered")

    # The call button rings flat1: set it in the form, save, see it saved.
    targets = page.get_by_label("Targets (one SIP URI per line)")
    expect(targets).to_have_value("")
    targets.fill(FLAT1)
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-msg")).to_have_text("Saved.")
    with open(station.fw.config_path, "rb") as config_file:
        saved = tomllib.load(config_file)
    assert saved["buttons"][0]["targets"] == [FLAT1], saved["buttons"]
    assert station.fw.alive
    page.reload()
    expect(page.get_by_label("Targets (one SIP URI per line)")).to_have_value(FLAT1)
    expect(page.get_by_label("Call target")).to_have_value(FLAT1)
    expect(page.locator("#st-reg")).to_have_text("registered")
    page.screenshot(path=str(ARTIFACTS / "02-settings-saved.png"), full_page=True)

    # Test call: ringing on the status panel, then active with growing audio statistics.
    page.evaluate(RECORD_STATES)
    page.get_by_role("button", name="Test call").click()
    expect(page.locator("#action-msg")).to_have_text("Calling…")
    phone.wait_event("CALL_INCOMING", 5.0)
    state = page.locator("#st-calls .call-state")
    expect(state).to_have_text(re.compile("^(calling|ringing)$"))
    expect(page.locator("#st-calls")).to_contain_text(FLAT1)
    status_panel = page.locator('section[aria-labelledby="h-status"]')
    status_panel.screenshot(path=str(ARTIFACTS / "03-call-ringing.png"))
    phone.accept()
    phone.wait_event("CALL_ESTABLISHED", 5.0)
    expect(state).to_have_text("active")
    calls = page.locator("#st-calls")
    expect(calls).to_contain_text("PCMU, RTP")
    expect(calls).to_contain_text(re.compile(r"packets_received [1-9]"))
    first = packets_received(page)
    expect(calls).not_to_contain_text(f"packets_received {first} ", timeout=5000)
    assert packets_received(page) > first, "the audio statistics did not update"
    status_panel.screenshot(path=str(ARTIFACTS / "04-call-active.png"))
    seen = page.evaluate("window.seenStates")
    assert seen[-1] == "active" and seen.index("active") > 0, seen
    assert set(seen[:seen.index("active")]) <= {"calling", "ringing"}, seen

    # Hang up: the panel clears, the event log lists the call.
    page.get_by_role("button", name="Hang up").click()
    phone.wait_event("CALL_CLOSED", 5.0)
    expect(page.locator("#st-calls")).to_have_text("No call.")
    events = page.locator("#events")
    call_entry = events.locator("li", has=page.locator("strong", has_text=re.compile("^call$")))
    expect(call_entry.first).to_contain_text(f"Call to {FLAT1}")
    expect(events).to_contain_text("config_saved")
    page.locator('section[aria-labelledby="h-events"]').screenshot(
        path=str(ARTIFACTS / "05-event-log.png"))
    page.screenshot(path=str(ARTIFACTS / "06-after-call-full.png"), full_page=True)
    assert csp_errors == []
    context.close()

