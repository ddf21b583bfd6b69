"""The web console (``/console``) in a real browser on the session stack.

Headless Chromium from Debian (``chromium``, ``chromium-driver``) driven by Selenium through
``/usr/bin/chromedriver`` given to a ``Service``, so Selenium Manager never downloads anything.
The page talks to the real API, agent, workers, Docker engine and libvirt of the ``stack``
fixture, as a person would: sign in with a token, run a container, define a VM, start and stop it
with its buttons, read the audit log, sign out. Each step checks page text and element states
(a button is enabled exactly when the VM's ``allowed_actions`` has its action) and saves a
screenshot under the test's ``tmp_path`` (pixels are never compared).

Without Chromium, chromedriver or selenium the tests skip locally and fail on CI (``need``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import secrets
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from nube.tokens import Scope, TokenStore
from nube.tools.devstack import Stack
from tests.conftest import docker_available, need, remove_docker_resources

if importlib.util.find_spec("selenium") is not None:
    from selenium import webdriver
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.chromium.webdriver import ChromiumDriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait

pytestmark = [pytest.mark.browser, pytest.mark.docker]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 60
T = TypeVar("T")

#: The VM buttons the console shows (the snapshot actions need a name and stay in the API).
VM_BUTTONS = [
    "start",
    "shutdown",
    "destroy",
    "reboot",
    "suspend",
    "resume",
    "save",
    "restore",
    "autostart",
    "undefine",
]


# --- the browser ---------------------------------------------------------------------------------


def browser_available() -> bool:
    return (
        importlib.util.find_spec("selenium") is not None
        and CHROMIUM.exists()
        and CHROMEDRIVER.exists()
    )


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium through Debian's chromedriver (no Selenium Manager, no download)."""
    need(browser_available(), "headless Chromium (chromium, chromium-driver) with selenium")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests run as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,2600",
        "--lang=en-US",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class Screens:
    """Numbered screenshots of the whole window under ``tmp_path/screenshots``."""

    def __init__(self, driver: WebDriver, root: Path) -> None:
        self.driver, self.root, self.taken = driver, root / "screenshots", 0
        self.root.mkdir()

    def shot(self, label: str) -> Path:
        self.taken += 1
        path = self.root / f"{self.taken:02d}-{label}.png"
        assert self.driver.save_screenshot(str(path)), path
        return path


def until(driver: WebDriver, what: str, check: Callable[[], T | None], timeout: float = WAIT) -> T:
    """Wait until ``check()`` is truthy (the page re-renders rows: stale elements are retried)."""
    waiter = WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.1,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    try:
        result: T = waiter.until(lambda _: check() or False, message=f"waiting for {what}")
    except TimeoutException as e:
        # say what the page showed instead: the sections' status lines and the jobs table
        try:
            seen = driver.execute_script(
                "return Array.from(document.querySelectorAll('[id$=\"-status\"], #jobs-body'))"
                ".map(e => e.id + ': ' + e.innerText.slice(0, 400)).join('\\n')"
            )
        except Exception as unreadable:  # the page itself may be gone
            seen = f"(unreadable: {type(unreadable).__name__})"
        raise TimeoutException(f"waiting for {what}; the page showed:\n{seen}") from e
    return result


def text(driver: WebDriver, selector: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, selector).text)


def shown(driver: WebDriver, selector: str) -> bool:
    return bool(driver.find_element(By.CSS_SELECTOR, selector).is_displayed())


#: A table row as one snapshot (rows are re-rendered whenever their list is read again).
_ROW = """
const row = document.querySelector(arguments[0]);
if (!row) return null;
const buttons = [...row.querySelectorAll('button[data-action]')];
const state = row.querySelector('td.state');
return {
  state: row.dataset.state, busy: row.dataset.busy === undefined ? null : row.dataset.busy,
  actions: buttons.map((b) => b.dataset.action),
  enabled: buttons.filter((b) => !b.disabled).map((b) => b.dataset.action),
  state_text: state ? state.textContent.trim() : null, text: row.innerText,
};
"""

#: The newest job row of an operation (on a target), as one snapshot.
_JOB_ROW = """
const [operation, target] = arguments;
const rows = [...document.querySelectorAll(`#jobs-body tr[data-operation="${operation}"]`)]
  .filter((r) => target === null || r.querySelector('td.target').textContent === target);
if (!rows.length) return null;
const row = rows[0];
return {id: row.dataset.jobId, status: row.dataset.status, text: row.innerText,
        target: row.querySelector('td.target').textContent};
"""


def vm_view(driver: WebDriver, name: str) -> dict[str, Any] | None:
    view: dict[str, Any] | None = driver.execute_script(_ROW, f'#vms-body tr[data-vm="{name}"]')
    if view is not None:
        assert view["actions"] == VM_BUTTONS, view
    return view


def settled_vm(driver: WebDriver, name: str, state: str) -> dict[str, Any]:
    """The VM's row once it shows ``state`` with no action in flight."""

    def ready() -> dict[str, Any] | None:
        view = vm_view(driver, name)
        return view if view and view["busy"] is None and view["state"] == state else None

    return until(driver, f"VM {name} {state}", ready)


def click_vm_button(driver: WebDriver, name: str, action: str) -> None:
    click(driver, f'#vms-body tr[data-vm="{name}"] button[data-action="{action}"]')


def container_in(driver: WebDriver, name: str, state: str) -> dict[str, Any]:
    """The container's row once it shows ``state``."""
    selector = f'#containers-body tr[data-name="{name}"]'

    def ready() -> dict[str, Any] | None:
        view: dict[str, Any] | None = driver.execute_script(_ROW, selector)
        return view if view and view["state"] == state else None

    return until(driver, f"container {name} {state}", ready)


def click(driver: WebDriver, selector: str) -> None:
    """Click, retrying while the row is being re-rendered."""

    def clicked() -> bool:
        driver.find_element(By.CSS_SELECTOR, selector).click()
        return True

    until(driver, f"{selector} clicked", clicked)


def job_row(
    driver: WebDriver,
    operation: str,
    status: str,
    target: str | None = None,
    after: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The newest row of ``operation`` (on ``target``; newer than the job ``after``) in the jobs
    table, once it is ``status``."""

    def found() -> dict[str, Any] | None:
        row: dict[str, Any] | None = driver.execute_script(_JOB_ROW, operation, target)
        newer = row is not None and (after is None or row["id"] != after["id"])
        return row if newer and row is not None and row["status"] == status else None

    return until(driver, f"job {operation} {status}", found)


def _section_read(driver: WebDriver, name: str) -> bool:
    return text(driver, f"#{name}-note").startswith(("updated", "admins only"))


def sections_loaded(driver: WebDriver) -> None:
    """Every resource section has been read once (its note says when, or why not)."""
    for name in ("vms", "containers", "images", "networks", "volumes", "audit"):
        until(driver, f"section {name}", partial(_section_read, driver, name))


def sign_in(driver: WebDriver, url: str, secret: str) -> None:
    driver.get(f"{url}/console")
    until(driver, "the sign-in form", lambda: shown(driver, "#token"))
    driver.find_element(By.ID, "token").send_keys(secret)
    driver.find_element(By.ID, "login-button").click()


def severe_logs(driver: WebDriver) -> list[dict[str, Any]]:
    """The browser's SEVERE log entries, but for requests Chromium aborted on a network change.

    Chromium aborts every request in flight with ``net::ERR_NETWORK_CHANGED`` (and logs it as
    SEVERE) when any interface on the host comes or goes; the suites beside this one create
    namespaces, veth pairs and bridges all the time. The console sends such a request again
    (``ASYNC_READS`` drops one to show it), so those entries are the host's, not the console's.
    """
    assert isinstance(driver, ChromiumDriver)  # the browser's log is Chromium's
    return [
        e
        for e in driver.get_log("browser")
        if e.get("level") == "SEVERE"
        and not str(e.get("message", "")).endswith("net::ERR_NETWORK_CHANGED")
    ]


def api_log_has(stack: Stack, needle: str, timeout: float = 5) -> bool:
    """Whether the API's access log (``<workdir>/api.log``) shows ``needle`` (soon)."""
    deadline = time.monotonic() + timeout
    while True:
        if needle in (stack.workdir / "api.log").read_text(errors="replace"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


#: Run before the console's script: every read asks ``Prefer: respond-async``, so reads answer
#: ``202`` with a job and the console must wait on the job's URL and take its result; and the
#: first read of the images fails as a dropped connection does (Chromium's ERR_NETWORK_CHANGED
#: when the host's interfaces change), which the console sends again.
ASYNC_READS = """
const realFetch = window.fetch;
window.asyncReads = 0;
window.dropped = 0;
window.fetch = (url, init = {}) => {
  if (url === '/v1/images' && !window.dropped) {
    window.dropped = 1;
    return Promise.reject(new TypeError('Failed to fetch'));
  }
  if ((init.method || 'GET') === 'GET' && init.headers && init.headers.Prefer) {
    init.headers.Prefer = 'respond-async';
    window.asyncReads += 1;
  }
  return realFetch(url, init);
};
"""


# --- cleanup -------------------------------------------------------------------------------------


def remove_vm(stack: Stack, secret: str, name: str) -> None:
    """Power off and undefine ``name`` through the API; libvirt directly if that failed."""
    headers = {"Authorization": f"Bearer {secret}", "Prefer": "wait=30"}
    with contextlib.suppress(requests.RequestException):
        for method, path in (("POST", f"/v1/vms/{name}/destroy"), ("DELETE", f"/v1/vms/{name}")):
            requests.request(method, stack.api_url + path, json={}, headers=headers, timeout=60)
    if not stack.libvirt_uri.startswith("qemu"):
        return
    import libvirt

    with contextlib.suppress(libvirt.libvirtError):
        conn = libvirt.open(stack.libvirt_uri)
        try:
            for dom in conn.listAllDomains(0):
                if dom.name().endswith(f"-{name}"):  # behind the tenant's prefix
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
        finally:
            conn.close()


# --- the tests -----------------------------------------------------------------------------------


def test_console_runs_a_container_and_drives_a_vm(
    stack: Stack, browser: WebDriver, tmp_path: Path
) -> None:
    need(docker_available(), "the Docker engine")
    started = time.monotonic()
    tenant = f"console{secrets.token_hex(3)}"
    secret, _ = TokenStore(stack.redis()).create(tenant, [Scope.READ, Scope.WRITE, Scope.ADMIN])
    vm = f"nubetest-console-{secrets.token_hex(3)}"
    screens = Screens(browser, tmp_path)
    try:
        # sign in: the token lives in this tab's sessionStorage only, never in a URL or cookie
        sign_in(browser, stack.api_url, secret)
        until(browser, "the console", lambda: shown(browser, "#app"))
        assert not shown(browser, "#login")
        sections_loaded(browser)
        stored = browser.execute_script("return sessionStorage.getItem('nube.console.token')")
        assert stored == secret
        assert browser.execute_script("return document.cookie") == ""
        assert browser.get_cookies() == []
        assert secret not in browser.current_url
        assert browser.find_element(By.ID, "token").get_attribute("value") == ""
        until(browser, "admin in the header", lambda: "admin" in text(browser, "#whoami"))
        assert "No VMs" in text(browser, "#vms-body")
        assert "busybox:latest" in text(browser, "#images-body")
        screens.shot("signed-in")

        # run a container and watch its job reach succeeded in the jobs list
        browser.find_element(By.ID, "run-command").send_keys("echo hello")
        browser.find_element(By.ID, "run-submit").click()
        run = job_row(browser, "containers.run", "succeeded")
        assert "exit 0" in run["text"] and "hello" in run["text"], run
        assert run["target"] == "busybox:latest"
        # the job was followed live through its events stream (fetch with a stream reader)
        assert api_log_has(stack, f"GET /v1/jobs/{run['id']}/events ")
        until(browser, "the run's output", lambda: shown(browser, "#run-output"))
        assert text(browser, "#run-output").strip() == "hello"
        assert text(browser, "#run-status") == "exited with code 0"
        until(browser, "the tenant in the header", lambda: tenant in text(browser, "#whoami"))
        screens.shot("container-ran")

        # a detached one stays in the containers list; its buttons follow its state
        command = browser.find_element(By.ID, "run-command")
        command.clear()
        command.send_keys("""sh -c "trap 'exit 0' TERM; while true; do sleep 1; done\"""")
        browser.find_element(By.ID, "run-detach").click()
        browser.find_element(By.ID, "run-submit").click()
        job_row(browser, "containers.run", "succeeded", after=run)
        until(browser, "the detached run", lambda: "is running" in text(browser, "#run-status"))
        name = text(browser, "#run-status").split(" is ")[0]
        assert set(container_in(browser, name, "running")["enabled"]) == {"stop"}
        click(browser, f'#containers-body tr[data-name="{name}"] button[data-action="stop"]')
        assert set(container_in(browser, name, "exited")["enabled"]) == {"start", "remove"}
        job_row(browser, "containers.stop", "succeeded")
        click(browser, f'#containers-body tr[data-name="{name}"] button[data-action="remove"]')
        until(
            browser,
            "no container left",
            lambda: "No containers" in text(browser, "#containers-body"),
        )

        # define a diskless VM: defined, and only what a defined VM allows is enabled
        browser.find_element(By.ID, "vm-name").send_keys(vm)
        memory = browser.find_element(By.ID, "vm-memory")
        memory.clear()
        memory.send_keys("64")
        browser.find_element(By.ID, "vm-submit").click()
        row = settled_vm(browser, vm, "defined")
        assert set(row["enabled"]) == {"start", "autostart", "undefine"}, row
        assert "64 MiB" in row["text"]
        assert text(browser, "#vm-status") == f"{vm} is defined"
        job_row(browser, "vms.define", "succeeded", target=vm)
        screens.shot("vm-defined")

        # start it with its button: while its job runs, every button of the VM is disabled
        click_vm_button(browser, vm, "start")
        busy = vm_view(browser, vm)
        if busy and busy["busy"] == "start":
            assert busy["enabled"] == [] and busy["state_text"] == "defined start…", busy
        row = settled_vm(browser, vm, "running")
        assert set(row["enabled"]) == {
            "shutdown",
            "destroy",
            "reboot",
            "suspend",
            "save",
            "autostart",
        }, row
        assert row["state_text"] == "running"
        job_row(browser, "vms.start", "succeeded", target=vm)
        screens.shot("vm-running")

        # stop it (power off) with its button
        click_vm_button(browser, vm, "destroy")
        row = settled_vm(browser, vm, "defined")
        assert set(row["enabled"]) == {"start", "autostart", "undefine"}, row
        assert row["state_text"] == "defined"
        job_row(browser, "vms.destroy", "succeeded", target=vm)

        # the audit log (an admin token) shows the VM's start, as the agent and worker wrote it
        until(
            browser,
            "vms.start in the audit log",
            lambda: browser.find_elements(
                By.CSS_SELECTOR,
                '#audit-body tr[data-operation="vms.start"][data-outcome="succeeded"]',
            ),
        )
        audit = text(browser, "#audit-body")
        assert tenant in audit and vm in audit and "containers.run" in audit
        screens.shot("vm-stopped")

        # remove it with its button: the row goes
        click_vm_button(browser, vm, "undefine")
        until(browser, "no VM left", lambda: "No VMs" in text(browser, "#vms-body"))
        job_row(browser, "vms.undefine", "succeeded", target=vm)
        screens.shot("vm-undefined")

        # sign out: the token is gone from the tab
        browser.find_element(By.ID, "logout").click()
        until(browser, "the sign-in form again", lambda: shown(browser, "#login"))
        assert not shown(browser, "#app")
        assert browser.execute_script("return sessionStorage.length") == 0
        assert text(browser, "#jobs-body") == ""
        assert severe_logs(browser) == []
        assert not api_log_has(stack, secret, timeout=0)  # never in a URL
    finally:
        remove_vm(stack, secret, vm)
        remove_docker_resources(tenant)
        print(
            f"\nconsole: {screens.taken} screenshots in {screens.root} "
            f"({time.monotonic() - started:.1f} s in the browser)"
        )


def test_console_refuses_a_bad_token_and_hides_the_audit_log_from_non_admins(
    stack: Stack, browser: WebDriver, tmp_path: Path
) -> None:
    page = requests.get(f"{stack.api_url}/console", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "connect-src 'self'" in csp
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in page.text  # no inline script: the one script is a file
    script = requests.get(f"{stack.api_url}/static/console.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]

    screens = Screens(browser, tmp_path)
    sign_in(browser, stack.api_url, "not-a-token")
    until(
        browser, "the refusal", lambda: text(browser, "#login-error") == "This token was refused."
    )
    assert not shown(browser, "#app")
    assert browser.execute_script("return sessionStorage.length") == 0
    screens.shot("refused")

    # the CSP is in force: an inline script injected into the page does not run
    ran = browser.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.inlineRan = 1';"
        "document.body.append(s); return window.inlineRan === 1;"
    )
    assert ran is False

    # a read-only token, with every read answered 202 + job: the console waits on the job
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": ASYNC_READS})
    secret, _ = TokenStore(stack.redis()).create(f"reader{secrets.token_hex(3)}", [Scope.READ])
    sign_in(browser, stack.api_url, secret)
    until(browser, "the console", lambda: shown(browser, "#app"))
    sections_loaded(browser)
    assert browser.execute_script("return window.asyncReads") >= 7
    assert browser.execute_script("return window.dropped") == 1
    assert "busybox:latest" in text(browser, "#images-body")
    assert "No VMs" in text(browser, "#vms-body")
    for name in ("vms", "containers", "images", "networks", "volumes"):
        assert text(browser, f"#{name}-note").startswith("updated"), name
    assert text(browser, "#audit-note") == "admins only"
    assert "Admins only" in text(browser, "#audit-body")
    assert "admin" not in text(browser, "#whoami")
    screens.shot("reader")
    # a reload keeps the session of this tab (sessionStorage), with no token in the URL
    browser.refresh()
    until(browser, "the console after a reload", lambda: shown(browser, "#app"))
    assert secret not in browser.current_url
