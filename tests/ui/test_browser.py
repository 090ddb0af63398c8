"""The console in headless Chromium against the real server: log in, watch events arrive live,
search, open an event and see its proof verify (server and browser), see a brute-force alert
appear, see a silent source turn red. Every page is screenshotted to tests/ui/artifacts/."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.conftest import make_event
from tests.ui.conftest import login, send, shoot
from trailseal.event import utc_now


def test_login_refuses_bad_tokens_and_roles(browser, server):
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/ui/alerts")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=/ui/alerts"))
    page.get_by_label("API token").fill("tsk_not-a-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_have_text("unknown or revoked token")
    page.get_by_label("API token").fill(server.token(role="ingest"))
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_contain_text("role 'ingest' cannot use the console")
    shoot(page, "login")
    page.get_by_label("API token").fill(server.token(role="reader"))
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/ui/alerts$"))
    cookie = next(c for c in context.cookies() if c["name"] == "ts_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    context.close()


def test_events_arrive_live_without_reload(page, server):
    page.goto(server.url + "/ui/stream")
    marker = page.evaluate("() => performance.timeOrigin")
    send(server, [make_event(i, action="payment.capture", category="data_change") for i in range(3)])
    expect(page.locator("#rows tr", has_text="payment.capture")).to_have_count(3, timeout=10_000)
    assert page.evaluate("() => performance.timeOrigin") == marker  # the same document: no reload
    shoot(page, "stream")


def test_search_and_saved_search(page, server):
    send(server, [make_event(100 + i, action="user.login", category="authentication", outcome="failure")
                  for i in range(4)])
    page.goto(server.url + "/ui/search")
    page.get_by_label("Query").fill("action:user.login outcome:failure")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#results tr").first).to_contain_text("user.login")
    assert page.locator("#results tr").count() >= 4
    page.get_by_label("Save this search as").fill("failed logins")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#saved")).to_contain_text("failed logins")
    shoot(page, "search")
    page.get_by_label("Query").fill("actor:(")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator(".error")).to_contain_text("query:")


def test_event_proof_verifies_on_server_and_in_browser(page, server):
    # its own events: pytest-xdist may run this test on another worker (another server) than the stream test
    send(server, [make_event(600 + i, action="invoice.void", category="data_change") for i in range(3)])
    page.goto(server.url + "/ui/search?q=action:invoice.void")
    page.locator("#results a").first.click()
    expect(page.locator("#server-verify")).to_contain_text("✔ verified")
    expect(page.locator("#browser-verify")).to_contain_text("✔ verified in your browser")
    expect(page.locator("#browser-verify")).to_have_class(re.compile("ok"))
    expect(page.locator("#tlog-proof")).to_contain_text("c2sp.org/tlog-proof@v1")
    shoot(page, "event")
    page.get_by_role("link", name="Timeline of this actor").click()
    expect(page.locator("ol.timeline li").first).to_contain_text("invoice.void")
    shoot(page, "timeline")


def test_brute_force_alert_appears_and_is_acknowledged(page, server):
    page.goto(server.url + "/ui/alerts")
    burst = [make_event(200 + i, action="user.login", category="authentication", outcome="failure")
             for i in range(20)]
    burst.append(make_event(220, action="user.login", category="authentication", outcome="success"))
    now = utc_now()
    for event in burst:
        event["actor"] = {"id": "victim", "ip": "198.51.100.9", "type": "user"}
        event["time"] = now  # a live attack: the producer's clock agrees with ours
    send(server, burst)
    card = page.locator("#open-alerts article", has_text="Brute force from one IP address")
    expect(card).to_have_count(1, timeout=15_000)
    expect(card.locator("summary")).to_contain_text("matching event(s)")
    shoot(page, "alerts")
    card.get_by_label("Note (optional)").fill("blocked 198.51.100.9 at the edge")
    card.get_by_role("button", name="Acknowledge").click()
    acked = page.locator("#acked-alerts article", has_text="Brute force from one IP address")
    expect(acked).to_contain_text("blocked 198.51.100.9 at the edge")


def test_silent_source_turns_red(page, server):
    event = make_event(300, action="invoice.read", category="data_access")
    event["source"] = {"component": "billing", "kind": "app", "host": "billing-1"}
    send(server, [event])
    page.goto(server.url + "/ui/sources")
    row = page.locator('#sources tr[data-source="billing"]')
    expect(row).to_have_count(1)
    expect(row).to_have_class("silent", timeout=15_000)
    expect(row).to_contain_text("silent")
    color = row.locator("th").evaluate("e => getComputedStyle(e).color")
    assert color == "rgb(176, 0, 32)"  # --fail
    shoot(page, "sources")


def test_every_other_page_renders(page, server):
    # this test may run on its own xdist worker: give the report the failed logins PCI 10.2.1.4 asks for
    send(server, [make_event(400 + i, action="user.login", category="authentication", outcome="failure")
                  for i in range(3)])
    for name, check in [("integrity", "#logs"), ("charts", "svg.bars"), ("validate", "h1"),
                        ("report", "#framework")]:
        page.goto(server.url + f"/ui/{name}")
        expect(page.locator(check).first).to_be_visible()
        shoot(page, name)
    page.get_by_label("Framework").select_option("pci-dss")
    page.get_by_role("button", name="Build report").click()
    expect(page.locator("table.controls")).to_contain_text("10.2.1.4")
    expect(page.locator("#control-10\\.2\\.1\\.4")).to_contain_text("pass")
    shoot(page, "report")


def test_phone_width_is_usable(browser, server, reader):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    login(page, server, reader)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    shoot(page, "stream-phone")
    page.goto(server.url + "/ui/sources")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    shoot(page, "sources-phone")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    context.close()
