"""The upload page in a real browser: Debian's chromium, driven headless by Playwright.

The server is uvicorn on a free loopback port with the shipped CarNet; the photo is synthetic
(``crackseg.data.synth``). ``CRACKSEG_SCREENSHOT=1`` also saves the page, with its result, to
``docs/serve.png`` (the README's picture).
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the service needs FastAPI: pip install -e '.[dev]'")
pytest.importorskip("httpx", reason="the service's tests need httpx: pip install -e '.[dev]'")

import os
import shutil
from pathlib import Path

from crackseg.data.synth import generate
from crackseg.inference import Predictor
from crackseg.serve import ServeSettings, create_app

from .conftest import encode, live_server

ROOT = Path(__file__).resolve().parents[2]


def _chromium() -> str | None:
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright not installed: pip install -e '.[dev]'"
    )
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def test_upload_a_photo_and_see_overlay_mask_and_sortable_crack_table(browser, tmp_path):
    predictor = Predictor.from_pretrained(threads=1)
    photo = generate(11, (480, 720), "sunny")[0]
    with live_server(create_app(predictor, ServeSettings())) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(  # JS errors; the 415 asked for below is logged as a failed load: not one
            "console",
            lambda m: (
                m.type == "error"
                and not m.text.startswith("Failed to load resource")
                and errors.append(m.text)
            ),
        )
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('meta').textContent.includes('carnet')")

        # a file that is not a photo: the server's 415 is shown in the page
        page.set_input_files(
            "#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}]
        )
        page.wait_for_selector("#error:not(.hidden)")
        assert "415" in page.inner_text("#error") and "not a photo" in page.inner_text("#error")
        assert page.is_hidden("#results")

        page.fill("#mm", "0.5")
        page.set_input_files(
            "#file",
            files=[{"name": "road.jpg", "mimeType": "image/jpeg", "buffer": encode(photo, "JPEG")}],
        )
        page.wait_for_selector("#cracks tbody tr", timeout=120_000)
        assert page.is_hidden("#error")  # the earlier error is cleared
        sizes = page.evaluate(
            "['overlay', 'mask'].map(id => { const i = document.getElementById(id);"
            " return [i.complete, i.naturalWidth, i.naturalHeight]; })"
        )
        assert sizes == [[True, 720, 480], [True, 720, 480]]
        rows = page.locator("#cracks tbody tr")
        n = rows.count()
        assert n >= 1 and page.inner_text("#count") == f"({n})"
        headers = page.eval_on_selector_all("#cracks thead th", "e => e.map(h => h.dataset.key)")
        assert {"length_px", "length_mm", "orientation", "severity"} <= set(headers)
        col = headers.index("length_px")

        def lengths() -> list[float]:
            return page.eval_on_selector_all(
                f"#cracks tbody tr td:nth-child({col + 1})",
                "cells => cells.map(c => parseFloat(c.dataset.v))",
            )

        page.click("#cracks th[data-key=length_px] button")
        assert lengths() == sorted(lengths())
        page.click("#cracks th[data-key=length_px] button")
        assert lengths() == sorted(lengths(), reverse=True)
        assert page.get_attribute("#cracks th[data-key=length_px]", "aria-sort") == "descending"
        assert "m" in page.inner_text("#stats")  # total length in metres with a scale

        page.select_option("#view", "prob")  # the right-hand view switches to the probability
        assert "probability" in page.get_attribute("#mask", "alt")
        page.select_option("#view", "mask")
        assert errors == []

        if os.environ.get("CRACKSEG_SCREENSHOT") == "1":
            page.evaluate("window.scrollTo(0, 0)")
            shot = ROOT / "docs" / "serve.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 50_000
        page.close()
