"""axe-core (from npm, tests/web/package.json) run inside a Playwright page: the page's
accessibility check (issue 18).

    from tests.web import axe
    axe.check(page, "login-360")      # after page.goto(...) and whatever the screen needs

`check(page, screen_name)` puts tests/web/node_modules/axe-core/axe.min.js into the page, runs
`axe.run(document)`, saves the whole result as test-artifacts/axe/<screen_name>.json and fails
the test on any violation of impact "serious" or "critical", listing each rule with the
elements it found. Lesser violations ("minor", "moderate") are kept in the JSON and returned.

How axe gets into the page: the station's Content-Security-Policy (`script-src 'self'`)
forbids inline scripts, and Playwright's `page.add_script_tag(path=...)` inserts an inline
<script>: Chromium blocks it ("Executing inline script violates the following Content Security
Policy directive 'script-src 'self''"). `check` therefore evaluates the file's text with
`page.evaluate`, which goes through the DevTools protocol and is not subject to the page's CSP.
No `bypass_csp` context is used: the page and its policy stay exactly as served, so the check
sees what a user gets.

Pages without JavaScript (a context made with `java_script_enabled=False`: the setup and login
forms must work without it) cannot run axe: DevTools evaluation still works there, but timers
do not, and `axe.run` never finishes. For those, `check(page, name, javascript=False)` takes the
page's document as it is now (`page.content()`, e.g. the error page a form post returned) and
serves it, with the station's stylesheets and security headers, at the same URL in a second,
JavaScript-enabled context of the same browser (one per browser, kept open with it) and checks
that copy. This is the same document
only because these pages have no script of their own: `check` refuses a copy with a <script>.

axe-core is installed by tools/install-peers (`npm ci` in tests/web). Where it is missing the
check skips with the reason; under CI (environment CI=true) a missing axe-core is a failure.

Public API: `AXE_JS`, `ARTIFACTS`, `IMPACTS_THAT_FAIL`, `missing() -> str | None`,
`check(page, screen_name, javascript=True, fail_on=IMPACTS_THAT_FAIL) -> list[dict]` (all
violations found), `summary(violations) -> str`.
"""

import json
import os
import pathlib
import re

import pytest

from tests.conftest import ROOT

AXE_JS = pathlib.Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts" / "axe"
IMPACTS_THAT_FAIL = ("serious", "critical")
_SCREEN_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
RUN_TIMEOUT_MS = 30000
_RUN = """async (timeoutMs) => {
  const timeout = new Promise((_, reject) => setTimeout(
    () => reject(new Error('axe.run did not finish within ' + timeoutMs + ' ms')), timeoutMs));
  const result = await Promise.race([
    axe.run(document, {resultTypes: ['violations']}), timeout]);
  return JSON.parse(JSON.stringify(result));
}"""


def missing():
    """Why axe-core cannot be used here, or None when it can."""
    if not AXE_JS.is_file():
        return (f"axe-core is not installed ({AXE_JS.relative_to(ROOT)} is missing): "
                "run tools/install-peers (npm ci in tests/web)")
    return None


def _require_axe():
    problem = missing()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"under CI the accessibility check must run: {problem}")
    pytest.skip(problem)


def _inject(page):
    if page.evaluate("() => typeof window.axe") != "object":
        page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    kind = page.evaluate("() => typeof window.axe")
    assert kind == "object", f"axe-core did not load into {page.url} (window.axe is {kind})"


def _run(page):
    _inject(page)
    return page.evaluate(_RUN, RUN_TIMEOUT_MS)


def _run_on_a_copy(page):
    """axe's result for the document `page` shows, served again in a JavaScript context."""
    document = page.content()
    assert "<script" not in document.lower(), (
        f"{page.url} has scripts: check it in a context with JavaScript")
    headers = {"Content-Type": "text/html; charset=utf-8"}
    served = page.context.request.get(page.url)  # the page's own security headers
    headers.update({k: v for k, v in served.headers.items()
                    if k.lower() in ("content-security-policy", "x-frame-options",
                                     "x-content-type-options", "referrer-policy")})
    browser = page.context.browser
    context = getattr(browser, "_axe_copies", None)  # one per browser: a new one costs ~1 s
    if context is None:
        context = browser._axe_copies = browser.new_context()
    copy = context.new_page()
    try:
        copy.set_viewport_size(page.viewport_size)
        copy.route(page.url, lambda route: route.fulfill(status=200, body=document,
                                                          headers=headers))
        copy.goto(page.url)
        return _run(copy)
    finally:
        copy.close()


def summary(violations):
    """The violations as readable lines: impact, rule, help, and up to 5 elements each."""
    lines = []
    for violation in violations:
        lines.append(f"[{violation.get('impact')}] {violation['id']}: {violation['help']} "
                     f"({len(violation['nodes'])} element(s); {violation.get('helpUrl', '')})")
        for node in violation["nodes"][:5]:
            target = " ".join(str(t) for t in node.get("target", []))
            lines.append(f"    {target}: {node.get('failureSummary', '').strip()}"
                         .replace("\n", " "))
    return "\n".join(lines)


def check(page, screen_name, javascript=True, fail_on=IMPACTS_THAT_FAIL):
    """Run axe-core on what `page` shows now; fail on violations with an impact in `fail_on`.
    `javascript=False` for a page in a context without JavaScript (checked on a copy)."""
    assert _SCREEN_NAME.match(screen_name), f"bad screen name {screen_name!r}"
    _require_axe()
    result = _run(page) if javascript else _run_on_a_copy(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    record = {"screen": screen_name, "url": page.url, "viewport": page.viewport_size,
              "javascript": javascript, **result}
    with open(ARTIFACTS / f"{screen_name}.json", "w", encoding="utf-8") as out:
        json.dump(record, out, indent=1)
    violations = result.get("violations", [])
    failing = [v for v in violations if v.get("impact") in fail_on]
    assert not failing, (f"axe-core found {len(failing)} {'/'.join(fail_on)} violation(s) on "
                         f"screen {screen_name!r} ({page.url}):\n{summary(failing)}")
    return violations
