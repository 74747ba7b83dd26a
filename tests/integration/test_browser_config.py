"""The page shows why SIP is off and fixes it (issue 12), in Debian's chromium against the real
firmware: a hand-edited configuration file with a CRLF in `sip.domain` used to end every start
(no page at all); now the page comes up, says the file has errors, marks the Domain field, and
saving a corrected domain from the form starts SIP in the same process."""

import re
import shutil

import pytest

from tests.integration.helpers import station_config
from tests.integration.test_web_live import ADMIN_PASSWORD, LiveStation

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
CHROMIUM = shutil.which("chromium")
pytestmark = [pytest.mark.peers,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")]
TIMEOUT_MS = 10000


def test_the_page_shows_the_bad_file_and_a_fix_from_the_form_starts_sip(tmp_path):
    good = station_config(None)
    station = LiveStation(tmp_path / "station", good)
    with open(station.fw.config_path, "w", encoding="utf-8") as config_file:
        config_file.write(f'[sip]\ndomain = "door.example\\r\\nX-Injected: 1"\n'
                          f'listen = "{good["sip"]["listen"]}"\n'
                          f'[web]\nlisten = "{good["web"]["listen"]}"\n')
    station.start()
    pid = station.fw.pid
    try:
        with playwright_sync.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            try:
                page = browser.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                url = "http://%s:%d" % station.web
                page.goto(url + "/")
                page.get_by_label("New password").fill(ADMIN_PASSWORD)
                page.get_by_label("Repeat the password").fill(ADMIN_PASSWORD)
                page.get_by_role("button", name="Set password").click()
                # the page opens the settings, each error of the file at its field
                page.wait_for_url(url + "/#settings")
                expect(page.locator("#st-reg")).to_contain_text("SIP is off")
                expect(page.locator("#settings-summary")).to_contain_text(
                    "configuration file has 1 error")
                expect(page.locator('[id="e:f:sip.domain"]')).to_contain_text("host name")

                page.get_by_label("Domain", exact=True).fill("127.0.0.1")
                page.get_by_role("button", name="Save settings").click()
                expect(page.locator("#settings-msg")).to_have_text(
                    re.compile(r"^Saved(\.|, with)"))
                page.get_by_role("link", name="Dashboard").click()
                expect(page.locator("#st-reg")).to_have_text(
                    "Direct IP (no registrar)")  # SIP up
            finally:
                browser.close()
        assert station.fw.pid == pid and station.fw.alive
        assert station.status()["config_errors"] == {}
        assert b"X-Injected" not in station.config_bytes()
    finally:
        station.fw.kill()
        print(station.describe(60))
