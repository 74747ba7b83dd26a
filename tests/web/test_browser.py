"""The page in a real browser (Debian's chromium through Playwright) against the app served over
HTTP on 127.0.0.1 with a FakeStation. Screenshots go to test-artifacts/web/."""

import asyncio
import json
import shutil
import threading
import tomllib
import urllib.request

import pytest

from firmware import config as configuration
from firmware.web.app import create_app, start
from tests.conftest import ROOT
from tests.web.fake_station import FakeStation

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")

ARTIFACTS = ROOT / "test-artifacts" / "web"
PASSWORD = "correct horse battery"
PAGE_BUDGET = 40 * 1024  # bytes for the main page with its JS and CSS
TIMEOUT_MS = 10000


class Served:
    """The app on a free loopback port, served by an event loop in a background thread."""

    def __init__(self, tmp_path, changes=None):
        cfg = configuration.defaults()
        cfg["buttons"][0]["targets"] = ["sip:flat1@127.0.0.1"]
        cfg.update(changes or {})
        self.station = FakeStation(cfg, answer_after=1.0)
        self.config_path = str(tmp_path / "doorline.toml")
        configuration.save_atomic(self.config_path, self.station.config)
        self.app = create_app(self.station, self.config_path, str(tmp_path))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = self._run(start(self.app, "127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def stop(self):
        async def close():
            self.server.close()
            await self.server.wait_closed()
        self._run(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def set_password(self):
        request = urllib.request.Request(self.url + "/api/setup", method="POST",
                                         data=json.dumps({"password": PASSWORD}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as res:
            assert res.status == 200

    def saved_config(self):
        with open(self.config_path, "rb") as f:
            return tomllib.load(f)


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"])
        yield browser
        browser.close()


@pytest.fixture
def served(tmp_path):
    s = Served(tmp_path)
    yield s
    s.stop()


def new_page(browser, width=1000, height=900):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.csp_errors = []
    page.on("console", lambda m: "Content Security Policy" in m.text
            and page.csp_errors.append(m.text))
    return page


def log_in(page, served):
    page.goto(served.url + "/")
    assert page.url.endswith("/login")
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(served.url + "/")
    playwright_sync.expect(page.locator("#st-reg")).to_have_text("registered")


def test_first_boot_password_then_login(browser, served):
    page = new_page(browser)
    page.goto(served.url + "/api/status")
    assert "no admin password" in page.content()
    page.goto(served.url + "/")
    assert page.url.endswith("/setup")
    page.get_by_label("New password").fill("aaaaaaaaaaaa")
    page.get_by_label("Repeat the password").fill("aaaaaaaaaaaa")
    page.get_by_role("button", name="Set password").click()
    playwright_sync.expect(page.get_by_role("alert")).to_contain_text("different characters")
    page.screenshot(path=str(ARTIFACTS / "setup-weak-password.png"))
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Set password").click()
    page.wait_for_url(served.url + "/")
    playwright_sync.expect(page.locator("#st-reg")).to_have_text("registered")

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(served.url + "/login")
    page.get_by_label("Admin password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    playwright_sync.expect(page.get_by_role("alert")).to_have_text("Wrong password.")
    page.screenshot(path=str(ARTIFACTS / "login-wrong-password.png"))
    assert [e["type"] for e in served.station.events()].count("auth_failed") == 1
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(served.url + "/")
    assert page.csp_errors == []


def test_change_a_setting_and_see_it_saved(browser, served):
    served.set_password()
    page = new_page(browser)
    log_in(page, served)
    page.get_by_label("Registration expires (s)").fill("600")
    page.get_by_label("Display name").fill("Front door")
    page.get_by_role("button", name="Save settings").click()
    playwright_sync.expect(page.locator("#settings-msg")).to_have_text("Saved.")
    saved = served.saved_config()
    assert saved["sip"]["expires"] == 600 and saved["sip"]["display_name"] == "Front door"
    assert served.station.applied[-1].sip.expires == 600
    page.reload()
    playwright_sync.expect(page.get_by_label("Registration expires (s)")).to_have_value("600")
    assert page.csp_errors == []


def test_validation_errors_next_to_their_fields_keep_the_typed_values(browser, served):
    served.set_password()
    page = new_page(browser, width=360, height=740)
    log_in(page, served)
    before = served.saved_config()
    listen = page.get_by_label("Listen on (host:port)", exact=True)
    listen.fill("127.0.0.1:70000")
    targets = page.get_by_label("Targets (one SIP URI per line)")
    targets.fill("sip:flat1@127.0.0.1\nsip:flat 1@@x")
    page.get_by_role("button", name="Save settings").click()
    listen_error = page.locator('[id="e:sip.listen"]')
    playwright_sync.expect(listen_error).to_contain_text("port must be 1-65535")
    playwright_sync.expect(page.locator('[id="e:buttons[0].targets"]')).to_contain_text(
        "line 2: not a valid SIP URI")
    playwright_sync.expect(listen).to_have_value("127.0.0.1:70000")
    playwright_sync.expect(targets).to_have_value("sip:flat1@127.0.0.1\nsip:flat 1@@x")
    playwright_sync.expect(listen).to_have_attribute("aria-invalid", "true")
    assert "Not saved" in page.locator("#settings-msg").text_content()
    assert served.saved_config() == before and served.station.applied == []
    listen_error.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "validation-error-360px.png"))
    page.screenshot(path=str(ARTIFACTS / "main-360px-full.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the page scrolls sideways on a 360 px phone ({width} px)"


def test_test_call_by_keyboard_shows_the_call_and_logs_it(browser, served):
    served.set_password()
    page = new_page(browser)
    log_in(page, served)
    target = page.get_by_label("Call target")
    playwright_sync.expect(target).to_have_value("sip:flat1@127.0.0.1")
    target.focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Test call"
    page.keyboard.press("Enter")
    state = page.locator("#st-calls .call-state")
    playwright_sync.expect(state).to_have_text("calling")
    playwright_sync.expect(state).to_have_text("confirmed")
    playwright_sync.expect(page.locator("#st-calls")).to_contain_text("PCMU")
    playwright_sync.expect(page.locator("#events")).to_contain_text("call")
    playwright_sync.expect(page.locator("#events")).to_contain_text("peer=sip:flat1@127.0.0.1")
    page.screenshot(path=str(ARTIFACTS / "call-in-progress.png"), full_page=True)
    page.get_by_role("button", name="Open door").click()
    playwright_sync.expect(page.locator("#action-msg")).to_have_text("Door opened.")
    assert served.station.door_openings == ["web"]
    assert page.csp_errors == []


def test_audio_sliders_and_speaker_test(browser, served):
    """issue 15: the volume and gain sliders save as numbers; "Test the speaker" plays."""
    served.set_password()
    page = new_page(browser)
    log_in(page, served)
    volume = page.get_by_label("Speaker volume (%)")
    assert volume.get_attribute("type") == "range" and volume.input_value() == "80"
    volume.fill("55")
    page.get_by_label("Microphone gain (dB)").fill("-6")
    page.get_by_label("Automatic gain").uncheck()
    page.get_by_role("button", name="Save settings").click()
    playwright_sync.expect(page.locator("#settings-msg")).to_have_text("Saved.")
    audio = served.saved_config()["audio"]
    assert (audio["speaker_volume"], audio["mic_gain_db"], audio["agc"]) == (55, -6, False)
    page.get_by_role("button", name="Test the speaker").click()
    playwright_sync.expect(page.locator("#action-msg")).to_contain_text("test tone")
    assert served.station.speaker_tests == 1
    page.screenshot(path=str(ARTIFACTS / "audio-settings.png"), full_page=True)
    assert page.csp_errors == []


def test_page_weight(browser, served):
    served.set_password()
    page = new_page(browser)
    page.route("**/*", lambda route: route.continue_())  # routing disables the HTTP cache
    log_in(page, served)
    sizes = {}

    def record(request):
        url = request.url.split("?")[0]
        if url.startswith(served.url + "/static/") or url == served.url + "/":
            size = request.sizes()
            sizes[url] = size["responseBodySize"] + size["responseHeadersSize"]

    page.on("requestfinished", record)
    page.reload(wait_until="load")
    playwright_sync.expect(page.locator("#st-reg")).to_have_text("registered")
    total = sum(sizes.values())
    print(f"\npage weight on first load: {total} bytes ("
          + ", ".join(f"{u.rsplit('/', 1)[-1] or 'index'} {n}" for u, n in sorted(sizes.items()))
          + ")")
    assert len(sizes) == 3, sizes
    assert total < PAGE_BUDGET


DOORS = {
    "relays": [{"role": "gate", "pulse_ms": 1500}],
    "time": {"zone": "UTC", "holidays": ["2026-12-25"]},
    "schedules": [{"name": "night", "days": ["fri"], "times": ["22:00-06:00"]}],
    "buttons": [{"role": "call", "targets": ["sip:flat1@127.0.0.1"], "quiet": "night",
                 "schedule_targets": [{"schedule": "night",
                                       "targets": ["sip:concierge@127.0.0.1"]}]}],
    "door": {"codes": [{"caller": "sip:flat1@127.0.0.1", "code": "2580", "relay": "gate",
                        "schedule": "night"}]},
}


def test_saving_the_page_keeps_relays_schedules_and_each_codes_relay(browser, tmp_path):
    served = Served(tmp_path, DOORS)
    try:
        served.set_password()
        page = new_page(browser)
        log_in(page, served)
        page.get_by_label("Display name").fill("Gate")
        page.get_by_label("Held-open alarm after (s, 0 = off)").fill("45")
        page.get_by_role("button", name="Save settings").click()
        playwright_sync.expect(page.locator("#settings-msg")).to_have_text("Saved.")
        cfg = served.station.applied[-1]
        assert cfg.sip.display_name == "Gate" and cfg.door.held_open_alarm_s == 45
        assert [(c.relay, c.schedule, c.code) for c in cfg.door.codes] == [
            ("gate", "night", "2580")]
        assert cfg.buttons[0].quiet == "night"
        assert cfg.buttons[0].schedule_targets[0].targets == ["sip:concierge@127.0.0.1"]
        assert cfg.relays[0].pulse_ms == 1500 and cfg.schedules[0].times == ["22:00-06:00"]
        assert cfg.time.holidays == ["2026-12-25"]
        page.get_by_label("More relays").fill('[{"role": "gate"')  # broken JSON
        page.get_by_role("button", name="Save settings").click()
        playwright_sync.expect(page.locator("#settings-msg")).not_to_have_text("Saved.")
        assert len(served.station.applied) == 1
        assert page.csp_errors == []
    finally:
        served.stop()
