"""The dashboard in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium; nothing is downloaded at test time): sign in, walk from the ledger to an
account to an entry, read a balance at a past date, reverse an entry, retry a failed job and
see the change; a read-only client sees no action and is refused when it posts the form
anyway; a page without the cookie redirects to the sign-in form.

Every page is saved as a screenshot at desktop and phone (375 px) widths, light and dark,
under ``$LEDGER_SCREENSHOTS`` (default ``tests/.screenshots``, not committed; CI keeps it).
The tests skip only when Chromium or its driver is not installed here; ``.ci/run`` installs
both before it runs pytest, so they run in CI."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait

from api.app import create_app
from ledger import clients, service
from ledger.settings import Settings
from tests.e2e.ui_world import PARTITIONS, build, fund_carol
from tests.integration.test_history import ALICE
from tests.keys import SECRET_KEY
from tests.serving import serve

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
SHOTS = Path(os.environ.get("LEDGER_SCREENSHOTS")
             or Path(__file__).resolve().parents[1] / ".screenshots")
DESKTOP, PHONE = (1280, 900), (375, 812)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs Chromium and its driver: apt-get install chromium chromium-driver "
           "(.ci/run installs them)")


@pytest.fixture(scope="module")
def url(db, database_url):
    app = create_app(Settings(database_url=database_url, secret_key=SECRET_KEY,
                              partitions=PARTITIONS), db=db)
    with serve(app, "ui-browser-uvicorn") as base:
        yield base


@pytest.fixture(scope="module")
def world(db, unique):
    return build(db, unique)


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-gpu", f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def shoot(driver, name: str) -> None:
    """The page at desktop and phone widths, light then dark; at 375 px nothing may be
    wider than the screen (wide tables scroll inside their own box)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": scheme}]})
        for label, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
            driver.set_window_size(width, height)
            if label == "phone":
                overflow = driver.execute_script(
                    "return document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"{name}: {overflow}px wider than a 375 px screen"
            driver.save_screenshot(str(SHOTS / f"{name}-{label}-{scheme}.png"))
    background = driver.execute_script(
        "return getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)", background  # dark mode followed the system
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    driver.set_window_size(*DESKTOP)


def sign_in(driver, client: clients.CreatedClient) -> None:
    driver.find_element(By.ID, "client_id").send_keys(client.client_id)
    driver.find_element(By.ID, "client_secret").send_keys(client.client_secret)
    follow(driver, driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]"))
    assert "/ui/signin" not in driver.current_url, text(driver)


def follow(driver, element) -> None:
    """Click ``element`` and wait until the next page has replaced this one."""
    old = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 10).until(staleness_of(old), "the click did not load a page")


def text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "main").text


def test_walk_balance_at_a_date_reverse_and_retry(browser, url, db, world):
    writer = clients.create_client(db, "browser writer", "write")
    browser.get(f"{url}/ui/ledgers")
    assert "/ui/signin" in browser.current_url  # no cookie: the sign-in form
    shoot(browser, "signin")
    sign_in(browser, writer)
    assert browser.current_url.endswith("/ui/ledgers")
    shoot(browser, "ledgers")

    follow(browser, browser.find_element(By.LINK_TEXT, world.ledger))
    assert "Chart of accounts" in text(browser)
    shoot(browser, "ledger")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "a[href*='users%3Aalice%2Favailable'],"
                                                          "a[href*='users%3Aalice/available']"))
    assert ALICE in text(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "svg polyline")
    shoot(browser, "account")
    follow(browser, browser.find_element(By.LINK_TEXT, "tr-1"))
    assert "Entry tr-1" in text(browser)
    shoot(browser, "entry")

    # A past balance, through the date picker's form.
    browser.get(f"{url}/ui/ledgers/{world.ledger}/account?path={ALICE}")
    picker = browser.find_element(By.ID, "at")
    browser.execute_script("arguments[0].value = '2025-03-02'", picker)
    follow(browser, picker.find_element(By.XPATH, "./following-sibling::button"))
    assert "at=2025-03-02" in browser.current_url
    assert browser.find_element(By.ID, "own").text.startswith("500")

    # Reverse bob's deposit, confirming.
    browser.get(f"{url}/ui/ledgers/{world.ledger}/entries/{world.deposit_id}")
    follow(browser, browser.find_element(By.ID, "reverse"))
    shoot(browser, "reverse-confirm")
    follow(browser, browser.find_element(By.ID, "confirm-reverse"))
    assert "This entry is reversed" in text(browser)
    assert browser.find_elements(By.ID, "reversed-by") and not browser.find_elements(By.ID, "reverse")
    assert service.get_ledger_entry(db, id=world.deposit_id).reversed_by_id is not None

    # Retry the failed job once its cause is fixed, then see it leave the failed list.
    fund_carol(db, world.ledger)
    browser.get(f"{url}/ui/ledgers/{world.ledger}/jobs")
    shoot(browser, "jobs")
    assert "tr-carol" in text(browser)
    follow(browser, browser.find_element(By.CSS_SELECTOR, "button.retry"))
    assert "is pending again" in browser.find_element(By.ID, "retried").text
    service.work_partition(db, world.failed_job.partition)
    browser.refresh()
    assert "tr-carol" not in text(browser)
    assert service.get_job(db, world.failed_job.id).status == service.POSTED

    for name, path in (("schema", f"/ui/ledgers/{world.ledger}/schema"),
                       ("reconciliation", f"/ui/ledgers/{world.ledger}/reconciliation"),
                       ("search", f"/ui/search?q=dep-1&ledger={world.ledger}")):
        browser.get(url + path)
        assert "Error" not in browser.title
        shoot(browser, name)


def test_read_only_client_sees_no_action_and_is_refused(browser, url, db, world):
    reader = clients.create_client(db, "browser reader", "read")
    entry = service.get_ledger_entry(db, ledger_ik=world.ledger, ik="tr-1")
    browser.get(f"{url}/ui/ledgers/{world.ledger}/entries/{entry.id}")
    sign_in(browser, reader)
    assert "Entry tr-1" in text(browser)  # back where it was sent from
    assert not browser.find_elements(By.ID, "reverse")
    # Keyboard: the first Tab reaches the skip link, which moves the focus to the content.
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    skip = browser.switch_to.active_element
    assert skip.text == "Skip to content"
    skip.send_keys(Keys.ENTER)
    assert browser.switch_to.active_element.get_attribute("id") == "main"
    browser.get(f"{url}/ui/ledgers/{world.ledger}/jobs")
    assert not browser.find_elements(By.CSS_SELECTOR, "button.retry")
    # The form posted anyway, with this session's own CSRF token.
    browser.get(f"{url}/ui/ledgers/{world.ledger}/entries/{entry.id}")
    browser.execute_script("""
        const f = document.createElement('form');
        f.method = 'post'; f.action = arguments[0];
        const c = document.createElement('input');
        c.type = 'hidden'; c.name = 'csrf';
        c.value = document.querySelector('meta[name=csrf-token]').content;
        f.appendChild(c); document.body.appendChild(f); f.submit();""",
        f"/ui/ledgers/{world.ledger}/entries/{entry.id}/reverse")
    WebDriverWait(browser, 10).until(lambda d: "Not allowed" in d.title or "read-only" in text(d))
    assert "read-only" in text(browser)
    assert service.get_ledger_entry(db, id=entry.id).reversed_by_id is None


HEADING_LEVELS = """
    return [...document.querySelectorAll('main h1, main h2, main h3, main h4')]
        .map(h => Number(h.tagName[1]));"""
UNLABELLED = """
    return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(c => !(c.labels && c.labels.length) && !c.getAttribute('aria-label'))
        .map(c => c.outerHTML);"""


def check_page_structure(driver) -> None:
    """One h1 first, no heading level skipped, every visible form control labelled."""
    levels = driver.execute_script(HEADING_LEVELS)
    assert levels and levels[0] == 1 and levels.count(1) == 1, levels
    assert all(b - a <= 1 for a, b in zip(levels, levels[1:])), levels
    assert driver.execute_script(UNLABELLED) == []


def tab_to(driver, matches, limit: int = 300):
    """Press Tab until the focused element ``matches``; fail if it never does."""
    for _ in range(limit):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        focused = driver.switch_to.active_element
        if matches(focused):
            outline = driver.execute_script(
                "return getComputedStyle(arguments[0]).outlineStyle", focused)
            assert outline != "none", focused.get_attribute("outerHTML")  # focus is visible
            return focused
    raise AssertionError("Tab never reached the element")


def press_enter(driver, element) -> None:
    old = driver.find_element(By.TAG_NAME, "html")
    element.send_keys(Keys.ENTER)
    WebDriverWait(driver, 10).until(staleness_of(old), "Enter did not load a page")


def href_has(*parts):
    return lambda e: all(p in (e.get_attribute("href") or "") for p in parts)


def test_keyboard_only_walk_and_a_hold_committed(browser, url, db, world):
    from datetime import datetime, timedelta, timezone
    writer = clients.create_client(db, "keyboard writer", "write")
    hold = service.add_ledger_hold(db, world.ledger, service.EntryRequest(
        ik="kb-hold", type="transfer", parameters={"from": "alice", "to": "bob", "amount": "11"}),
        datetime.now(timezone.utc) + timedelta(hours=1)).entry
    browser.get(f"{url}/ui/ledgers")
    check_page_structure(browser)
    field = tab_to(browser, lambda e: e.get_attribute("id") == "client_id")
    field.send_keys(writer.client_id)
    field = tab_to(browser, lambda e: e.get_attribute("id") == "client_secret")
    field.send_keys(writer.client_secret)
    press_enter(browser, field)  # Enter in a field submits its form
    assert browser.current_url.endswith("/ui/ledgers")
    check_page_structure(browser)
    press_enter(browser, tab_to(browser, lambda e: e.text == world.ledger))
    check_page_structure(browser)
    press_enter(browser, tab_to(browser, href_has("/account?", "alice", "available")))
    assert ALICE in text(browser)
    check_page_structure(browser)
    press_enter(browser, tab_to(browser, href_has(f"/entries/{hold.id}")))  # its holds table
    assert browser.find_element(By.ID, "hold-status").text == "pending"
    check_page_structure(browser)
    press_enter(browser, tab_to(browser, lambda e: e.get_attribute("id") == "commit"))
    check_page_structure(browser)
    press_enter(browser, tab_to(browser, lambda e: e.get_attribute("id") == "confirm-commit"))
    assert browser.find_element(By.ID, "hold-status").text == "committed"
    assert service.get_ledger_hold(db, hold.id).status == "committed"
