"""The camera on the page, in Debian's chromium (Playwright), against a real Station with the
simulated board's test pattern: the live view plays, a press of the call button shows its
picture as the last ring and in the history, and the phone URL can be issued. CSP stays strict
(no violations). Screenshots go to test-artifacts/camera/."""

import asyncio
import json
import shutil
import threading
import time
import urllib.request

import pytest

import hal
from firmware import config as configuration
from firmware.runtime.station import Station
from firmware.web.app import create_app, start
from tests.conftest import ROOT
from tests.peers.process import free_port

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")

ARTIFACTS = ROOT / "test-artifacts" / "camera"
PASSWORD = "correct horse battery"
TIMEOUT_MS = 10000


class Served:
    def __init__(self, tmp_path):
        cfg = configuration.validate({
            "sip": {"listen": f"127.0.0.1:{free_port(('udp', 'tcp'))}"},
            "camera": {"width": 320, "height": 240, "fps": 10}})
        self.config_path = str(tmp_path / "doorline.toml")
        configuration.save_atomic(self.config_path, cfg)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.board = hal.open_board("pc-sim", camera="pattern")
        self.station = Station(cfg, self.board, config_path=self.config_path,
                               state_dir=str(tmp_path), loop=self.loop)
        self._run(self.station.start())
        self.app = create_app(self.station, self.config_path, str(tmp_path))
        self.server = self._run(start(self.app, "127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]
        request = urllib.request.Request(self.url + "/api/setup", method="POST",
                                         data=json.dumps({"password": PASSWORD}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as res:
            assert res.status == 200

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def stop(self):
        async def close():
            self.server.close()
            await self.station.stop()
        self._run(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture
def served(tmp_path):
    s = Served(tmp_path)
    yield s
    s.stop()


def image_loaded(page, selector):
    return page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0")


def test_live_view_ring_picture_and_phone_url(served, monkeypatch):
    from firmware.runtime import camera as camera_module

    monkeypatch.setattr(camera_module, "IDLE_CLOSE_S", 0.5)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"])
        try:
            page = browser.new_context(viewport={"width": 1000, "height": 1000}).new_page()
            page.set_default_timeout(TIMEOUT_MS)
            csp = []
            page.on("console", lambda m: "Content Security Policy" in m.text
                    and csp.append(m.text))
            page.goto(served.url + "/login")
            page.get_by_label("Admin password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(served.url + "/**")
            page.get_by_role("link", name="Dashboard").click()  # past the first-setup checklist
            playwright_sync.expect(page.locator("#camera")).to_be_visible()
            page.wait_for_function(
                "() => { const i = document.getElementById('cam-live');"
                " return i.naturalWidth === 320; }")
            service = served.station.camera_service()
            assert service.capturing, "the live view does not hold the camera"

            page.get_by_role("button", name="Press call", exact=True).click()
            page.wait_for_function(
                "() => { const i = document.getElementById('cam-ring');"
                " return !i.hidden && i.complete && i.naturalWidth === 320; }")
            playwright_sync.expect(page.locator("#cam-history li")).to_have_count(1)
            playwright_sync.expect(page.locator("#cam-ring-caption")).to_contain_text("call")
            # the ring's event in the log links its picture
            link = page.locator("#events a", has_text="picture").first
            playwright_sync.expect(link).to_be_visible()
            assert link.get_attribute("href").startswith("/api/snapshots/")

            page.get_by_text("Earlier rings and the picture URL for phones").click()
            page.get_by_role("button", name="New picture URL").click()
            playwright_sync.expect(page.locator("#cam-phone")).to_contain_text(
                "/camera.jpg?token=")
            page.locator("#camera").screenshot(path=str(ARTIFACTS / "camera-section.png"))
            page.screenshot(path=str(ARTIFACTS / "page-with-camera.png"), full_page=True)
            assert csp == [], csp

            # the tab is hidden: the live view lets go, and the camera stops capturing
            page.evaluate("""() => {
                Object.defineProperty(document, 'visibilityState',
                                      {value: 'hidden', configurable: true});
                document.dispatchEvent(new Event('visibilitychange'));
            }""")
            assert page.eval_on_selector("#cam-live", "i => i.hasAttribute('src')") is False
            deadline = time.monotonic() + 12  # an open MJPEG response ends within 8 s
            while service.capturing and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not service.capturing, "still capturing with nobody looking"
        finally:
            browser.close()
