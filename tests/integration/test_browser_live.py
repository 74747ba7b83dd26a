"""The page in a real browser against the real firmware process and real peers (issue 6).

tests/web/test_browser.py drives the page against a FakeStation; here Debian's chromium (through
Playwright) talks to `python -m firmware --board pc-sim`, registered at Kamailio, and the test
call rings a baresip "flat1" registered there too:

first-boot password (the first-setup checklist opens: skipped here, tests/web/
test_first_setup_live.py walks it) → log out and in → set the call button's target in the
settings form and save (the file on disk and a reload show it) → "Test call" → the call card
shows the call ringing, then connected with its codec, its duration ticking and the measured
jitter → "Hang up" → the timeline tells the call. Screenshots go to test-artifacts/live/.

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
# Records every call state the call card shows, in order ("Ringing… · 0:02" is "Ringing…";
# consecutive repeats are folded).
RECORD_STATES = """() => {
  window.seenStates = [];
  new MutationObserver(() => {
    document.querySelectorAll('#st-calls .call-state').forEach((node) => {
      const seen = window.seenStates, state = node.textContent.split(' · ')[0];
      if (seen[seen.length - 1] !== state) seen.push(state);
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
    page.wait_for_url(url + "/#setup")  # a station nobody set up: the checklist first
    page.get_by_role("button", name="Skip the setup for now").click()
    page.wait_for_url(url + "/#dashboard")
    expect(page.locator("#st-reg")).to_contain_text("Registered with 127.0.0.1:")
    assert [e["type"] for e in station.events()].count("admin_password_set") == 1

    # Log out and in again with the password just set.
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(url + "/login")
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url + "/")
    expect(page.locator("#st-reg")).to_contain_text("Registered with 127.0.0.1:")

    # The call button rings flat1: set it in the settings, save, see it saved.
    page.get_by_role("link", name="Settings", exact=True).click()
    targets = page.get_by_label("Targets (one SIP URI per line)")
    expect(targets).to_have_value("")
    targets.fill(FLAT1)
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-msg")).to_have_text(re.compile(r"^Saved(\.|, with)"))
    with open(station.fw.config_path, "rb") as config_file:
        saved = tomllib.load(config_file)
    assert saved["buttons"][0]["targets"] == [FLAT1], saved["buttons"]
    assert station.fw.alive
    page.reload()
    expect(page.get_by_label("Targets (one SIP URI per line)")).to_have_value(FLAT1)
    page.screenshot(path=str(ARTIFACTS / "02-settings-saved.png"), full_page=True)
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_label("Call target")).to_have_value(FLAT1)
    expect(page.locator("#st-reg")).to_contain_text("Registered with 127.0.0.1:")

    # Test call: ringing on the call card, then connected with its codec, a ticking duration
    # and the jitter the station measured.
    page.evaluate(RECORD_STATES)
    page.get_by_role("button", name="Test call").click()
    expect(page.locator("#action-msg")).to_have_text(f"Calling {FLAT1}…")
    phone.wait_event("CALL_INCOMING", 5.0)
    card = page.locator("#st-calls .call")
    state = card.locator(".call-state")
    expect(state).to_have_text(re.compile("^(Calling|Ringing)…"))
    expect(card.locator(".peer")).to_have_text(f"To flat1 ({FLAT1})")
    card.screenshot(path=str(ARTIFACTS / "03-call-ringing.png"))
    phone.accept()
    phone.wait_event("CALL_ESTABLISHED", 5.0)
    expect(state).to_have_text(re.compile(r"^Connected · \d+:\d\d$"))
    expect(card.locator(".badges")).to_have_text("PCMU")
    expect(card).to_contain_text(re.compile(r"Jitter \d+\.\d ms"))
    first = state.text_content()
    expect(state).not_to_have_text(first)  # the duration ticks
    expect(page.locator("#action-msg")).to_have_text("Test call to flat1: answered")
    assert "null" not in card.text_content()
    card.screenshot(path=str(ARTIFACTS / "04-call-active.png"))
    seen = page.evaluate("window.seenStates")
    assert seen[-1] == "Connected" and seen.index("Connected") > 0, seen
    assert set(seen[:seen.index("Connected")]) <= {"Calling…", "Ringing…"}, seen

    # Hang up: the card goes, the timeline tells the call.
    page.get_by_role("button", name="Hang up").click()
    phone.wait_event("CALL_CLOSED", 5.0)
    expect(page.locator("#st-calls")).to_have_text("No call.")
    sentences = page.locator("#events li .sentence")
    expect(sentences.first).to_have_text(re.compile("^The call with flat1 ended after "))
    expect(page.locator("#events")).to_contain_text("Connected with flat1")
    expect(page.locator("#events")).to_contain_text("Settings saved (buttons)")
    page.locator("#timeline").screenshot(path=str(ARTIFACTS / "05-event-log.png"))
    page.screenshot(path=str(ARTIFACTS / "06-after-call-full.png"), full_page=True)
    assert csp_errors == []
    context.close()
