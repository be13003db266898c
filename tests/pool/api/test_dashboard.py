"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright) against the API
over a ledger written by a real regtest run: the demo miner finds blocks through the pool, they mature
and are credited. Every page loads without console errors, the numbers shown are the API's, a hostile
worker name is shown as text, the estimator computes, and screenshots (desktop and phone) are saved
under test-artifacts/dashboard/."""
from __future__ import annotations

import asyncio
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from aiohttp import ClientSession, web
from running_pool import running_pool

from pool.api.app import make_app
from pool.config import parse_config
from pool.devtools.miner import run_miner
from pool.devtools.regtest import RegtestNetwork

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "dashboard"
HOSTILE_WORKER = "<script>alert(1)</script>"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}

try:
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None

pytestmark = pytest.mark.skipif(
    async_playwright is None or not os.access(CHROMIUM, os.X_OK),
    reason=f"needs Chromium at {CHROMIUM} and the playwright package: run deploy/bootstrap.sh "
           "(apt-get install chromium; pip install -e '.[test]')")

_PREFIXES = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"]


def format_scaled(value: float | None, unit: str = "") -> str:
    """The dashboard's formatScaled (app.js), to compare the text shown with the API's number."""
    if value is None:
        return "-"
    if value == 0:
        return f"0 {unit}".strip()
    assert abs(value) >= 1, "below 1 the page uses toPrecision(3): not compared here"
    index = 0
    while abs(value) >= 1000 and index < len(_PREFIXES) - 1:
        value /= 1000
        index += 1
    return f"{value:.2f} {_PREFIXES[index]}{unit}".strip()


async def regtest_ledger(net: RegtestNetwork, dsn: str, tmp_path: Path) -> tuple[dict, object, str]:
    """Run the pool with the demo miner on regtest until it has found blocks, mature and credit them."""
    await asyncio.to_thread(net.generate, 101)
    address = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "pool", "bech32")
    miner_address = await asyncio.to_thread(net.rpc, 0, "getnewaddress", "miner", "bech32")
    raw = {
        "pool": {"coin": "litecoin-regtest", "address": address, "data_dir": str(tmp_path)},
        "daemons": [{"url": net.rpc_url(0)}],
        "stratum": {"ports": [{"port": 0, "host": "127.0.0.1", "name": "regtest", "difficulty": 0.05,
                               "vardiff": False}]},
        "work": {"poll_interval_s": 0.1},
        "database": {"dsn": dsn, "flush_interval_s": 0.2},
        "blocks": {"tracker_interval_s": 0.5},
        "payouts": {"scheme": "pplns", "pool_fee_percent": "1", "pplns_factor": 2, "interval_s": 0.5},
        "api": {"rate_limit_per_s": 0, "cache_s": 0},
    }
    config = parse_config(raw)
    async with running_pool(config) as running:
        stratum_port = running.server.ports[0]
        miner = asyncio.ensure_future(run_miner("127.0.0.1", stratum_port, f"{miner_address}.rig1", algorithm="scrypt"))
        for _ in range(1200):
            if len([b for b in running.blocks.results if b.status == "accepted"]) >= 2:
                break
            await asyncio.sleep(0.1)
        miner.cancel()
        await asyncio.gather(miner, return_exceptions=True)
        await running.blocks.wait()
        accepted = [b for b in running.blocks.results if b.status == "accepted"]
        assert len(accepted) >= 2
        await asyncio.to_thread(net.generate, 100)  # maturity
        for _ in range(300):
            if await running.db.fetchval("SELECT count(*) FROM blocks WHERE credited") >= len(accepted):
                break
            await asyncio.sleep(0.2)
        assert await running.db.fetchval("SELECT count(*) FROM blocks WHERE credited") >= len(accepted)
    # The API shows the configured ports: in production a fixed one, here the one the run was given.
    raw["stratum"]["ports"][0]["port"] = stratum_port
    return {"config": parse_config(raw), "stratum_port": stratum_port}, miner_address, address


async def add_hostile_worker(db, pool: str, address: str, now: datetime) -> None:
    """The Stratum server only takes worker names of [A-Za-z0-9_.-]{1,64}, so a hostile name cannot come
    in over Stratum: its rows go straight into the aggregates the API reads (worker_minutes), three hours
    of one share a minute up to the last complete minute (which also gives the charts a history)."""
    minute = now.replace(second=0, microsecond=0)
    rows = [(pool, address, HOSTILE_WORKER, minute - timedelta(minutes=ago), 1, 0.05,
             minute - timedelta(minutes=ago) + timedelta(seconds=30)) for ago in range(1, 181)]
    await db.copy_records_to_table(
        "worker_minutes", records=rows,
        columns=["pool", "address", "worker", "minute", "shares", "difficulty_sum", "last_share"])


class BrowserLog:
    """Console messages, page errors, dialogs and failed requests of a page: a clean page has none."""

    def __init__(self, page) -> None:
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        self.api: dict[str, object] = {}
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("dialog", self._dialog)
        page.on("requestfailed", lambda request: self.problems.append(f"request failed: {request.url}"))
        page.on("response", self._response)

    async def answer(self, path: str):
        """The JSON the page got from the API at path (responses are read as they come)."""
        for _ in range(100):
            if path in self.api:
                return self.api[path]
            await asyncio.sleep(0.05)
        raise AssertionError(f"the page never read {path}: {sorted(self.api)}")

    def _console(self, message) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    async def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    async def _response(self, response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")
        elif "/api/v1/" in response.url:
            try:
                self.api[response.url.split("/api/v1", 1)[1]] = orjson.loads(await response.body())
            except Exception:  # a navigation may end the response before it is read
                pass


async def open_page(page, base: str, route: str, name: str) -> None:
    rendered = await page.evaluate("() => document.getElementById('view')?.dataset.rendered || '0'") \
        if page.url.startswith(base) else "0"
    await page.goto(f"{base}/#/{route}")
    await page.wait_for_function(
        "([name, before]) => { const v = document.getElementById('view');"
        " return v && v.dataset.page === name && v.dataset.rendered !== before; }", arg=[name, rendered])


async def field(page, name: str) -> tuple[str, str | None]:
    locator = page.locator(f'#view [data-field="{name}"]').first
    return (await locator.inner_text()).strip(), await locator.get_attribute("data-value")


async def shoot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000
    return path


async def test_dashboard_in_chromium_on_a_regtest_ledger(dsn, db, tmp_path):
    net = RegtestNetwork()
    await asyncio.to_thread(net.start)
    try:
        run, miner_address, _ = await regtest_ledger(net, dsn, tmp_path)
        config = run["config"]
        pool = config.pool_name
        await add_hostile_worker(db, pool, miner_address, datetime.now(UTC))

        # The API's windows end at the start of the current minute; a clock one minute ahead puts the
        # run's last (still current) minute into them, so the page shows the real miner's hashrate.
        app = make_app(config, db, network_poll_s=5.0, clock=lambda: time.time() + 60)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with ClientSession() as http:
                async def api(path: str):
                    async with http.get(f"{base}/api/v1/pools/{pool}{path}") as response:
                        assert response.status == 200, (path, await response.text())
                        return await response.json()

                await check_dashboard(base, api, pool, miner_address, run["stratum_port"])
        finally:
            await runner.cleanup()
    finally:
        await asyncio.to_thread(net.stop)


async def check_dashboard(base: str, api, pool: str, miner_address: str, stratum_port: int) -> None:
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = await browser.new_context(**DESKTOP)
            page = await context.new_page()
            log = BrowserLog(page)

            # -- the pool: figures as the API gave them to the page, stable ones as the API gives them now
            await open_page(page, base, "", "overview")
            shown_pool = await log.answer("/pools")
            shown_pool = shown_pool["pools"][0]
            for key in ("5m", "1h", "24h"):
                text, raw = await field(page, f"hashrate-{key}")
                assert float(raw) == shown_pool["hashrate"][key]
                assert text == format_scaled(shown_pool["hashrate"][key], "H/s")
            pool_now = await api("")
            symbol = pool_now["coin"]["symbol"]
            blocks = await api("/blocks?page_size=25")
            found = [block for block in blocks["items"] if block["status"] in ("pending", "confirmed")]
            assert len(found) >= 2 and pool_now["blocks_found"] == len(found) == blocks["total"] - len(
                [block for block in blocks["items"] if block["status"] in ("orphaned", "rejected")])
            assert (await field(page, "blocks-found"))[0] == str(pool_now["blocks_found"])
            assert (await field(page, "last-block"))[0] == str(pool_now["last_block"]["height"])
            assert (await field(page, "total-paid"))[0] == f"{pool_now['total_paid_coins']} {symbol}"
            assert shown_pool["hashrate"]["1h"] > 0 and shown_pool["miners_online"] == 1
            assert await page.locator('[data-chart="pool"]').get_attribute("data-points") == "144"
            assert await page.locator('[data-table="miners"] tbody tr').count() == 1
            await shoot(page, "desktop-overview")

            # -- blocks: every row, height and status of each
            await open_page(page, base, "blocks", "blocks")
            rows = page.locator('[data-table="blocks"] tbody tr')
            assert await rows.count() == len(blocks["items"])
            for index, block in enumerate(blocks["items"]):
                assert await rows.nth(index).locator("[data-height]").inner_text() == str(block["height"])
                assert await rows.nth(index).locator(".badge").inner_text() == block["status"]
            assert sum(block["status"] == "confirmed" and block["credited"] for block in blocks["items"]) >= 2
            await shoot(page, "desktop-blocks")

            # -- payments (none sent by this run: the page says so)
            await open_page(page, base, "payments", "payments")
            payments = await api("/payments")
            if payments["total"]:
                assert await page.locator('[data-table="payments"] tbody tr').count() == len(payments["items"])
            else:
                assert await page.locator('[data-empty="payments"]').count() == 1
            await shoot(page, "desktop-payments")

            # -- a miner, reached through the look-up form
            await open_page(page, base, "miner", "miner")
            await page.fill('form[data-form="lookup"] input[name="address"]', miner_address)
            before = await page.evaluate("() => document.getElementById('view').dataset.rendered")
            await page.click('form[data-form="lookup"] button')
            await page.wait_for_function(
                "(before) => { const v = document.getElementById('view');"
                " return v.dataset.rendered !== before && v.querySelector('[data-table=workers]'); }", arg=before)
            assert page.url.endswith(f"#/miner/{quote(miner_address)}")
            miner = await api(f"/miners/{miner_address}")
            assert miner["balance"] > 0 and miner["workers_total"] == 2
            assert (await field(page, "balance"))[0] == miner["balance_coins"]
            assert (await field(page, "paid"))[0] == miner["total_paid_coins"]
            assert (await field(page, "workers-total"))[0] == str(miner["workers_total"])
            names = await page.locator('[data-table="workers"] .worker-name').all_inner_texts()
            assert sorted(names) == sorted(worker["name"] for worker in miner["workers"])
            assert HOSTILE_WORKER in names and "rig1" in names
            assert await page.locator("#view script").count() == 0
            assert await page.get_by_text(HOSTILE_WORKER, exact=True).count() == 1
            chart = page.locator('[data-chart="miner"]')
            assert await chart.get_attribute("data-points") == "144"
            await shoot(page, "desktop-miner")

            # -- how to connect
            await open_page(page, base, "connect", "connect")
            assert (await field(page, "stratum-url"))[0] == f"stratum+tcp://127.0.0.1:{stratum_port}"
            command = (await field(page, "cpuminer-command"))[0]
            assert command == (f"cpuminer -a scrypt -o stratum+tcp://127.0.0.1:{stratum_port} "
                               f"-u {miner_address}.rig1 -p x")  # the address looked up last
            await shoot(page, "desktop-connect")

            # -- the estimator: 2 kH/s (regtest's difficulty is tiny), as the API computes it
            await open_page(page, base, "estimate", "estimate")
            await page.fill('form[data-form="estimate"] input[name="hashrate"]', "2")
            await page.select_option('form[data-form="estimate"] select[name="unit"]', label="kH/s")
            await page.fill('form[data-form="estimate"] input[name="power_w"]', "100")
            await page.fill('form[data-form="estimate"] input[name="price_kwh"]', "0.25")
            await page.fill('form[data-form="estimate"] input[name="coin_price"]', "80")
            await page.click('form[data-form="estimate"] button')
            await page.wait_for_selector('[data-field="coins-per-day"]')
            estimate = await api("/estimate?hashrate=2000&power_w=100&price_kwh=0.25&coin_price=80")
            text, raw = await field(page, "coins-per-day")
            assert text == f"{estimate['coins_per_day']} {symbol}" and raw == estimate["coins_per_day"]
            assert estimate["satoshis_per_day"] > 0
            assert (await field(page, "power-cost"))[0] == "0.60"
            await shoot(page, "desktop-estimate")

            assert log.dialogs == [] and log.problems == [], (log.dialogs, log.problems)
            await context.close()

            # -- a phone: the same pages fit the screen (tables scroll inside their box)
            context = await browser.new_context(**PHONE)
            page = await context.new_page()
            log = BrowserLog(page)
            for route, name in (("", "overview"), ("blocks", "blocks"), (f"miner/{miner_address}", "miner"),
                                ("connect", "connect"), ("estimate", "estimate")):
                await open_page(page, base, route, name)
                overflow = await page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, (name, overflow)
                if name == "miner":
                    assert await page.get_by_text(HOSTILE_WORKER, exact=True).count() == 1
                await shoot(page, f"phone-{name}")
            assert log.dialogs == [] and log.problems == [], (log.dialogs, log.problems)
            await context.close()
        finally:
            await browser.close()
