"""The rendered course site (`medgan site`) and the Colab links.

* Every notebook's Colab badge and bootstrap cell point at the repository named once in pyproject.toml.
* The site builds offline and its pages reference nothing remote that a browser would load.
* In headless Chromium (Debian's chromium + chromedriver, driven by selenium): a notebook page renders with its
  figures, *Next* goes to the next notebook, search finds a page, no request leaves 127.0.0.1, and the console has
  no errors. A screenshot is saved to ``$MEDGAN_TEST_ARTIFACTS`` (default ``runs/test-artifacts/``).

In the full test session nbval executes the notebooks first (``testpaths``), and the site is built from those
executed copies; run alone, the fixture builds a two-notebook site (00, 01) in fast mode.
"""
import functools
import http.server
import json
import os
import re
import threading
import tomllib
from pathlib import Path

import pytest

from medgan_utils.tools.site import colab_url, course_repository

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LOADS_REMOTE = re.compile(r"<(?:script|img|iframe)[^>]*\ssrc=[\"']https?://|<link[^>]*rel=[\"']stylesheet[\"'][^>]*"
                          r"href=[\"']https?://|<link[^>]*href=[\"']https?://[^>]*rel=[\"']stylesheet", re.I)


def test_badges_and_bootstrap_cells_point_at_the_repository_named_once():
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["medgan"]
    repo, branch = table["repository"], table["branch"]
    assert course_repository(ROOT) == repo
    assert len(NOTEBOOKS) >= 6
    for nb_path in NOTEBOOKS:
        cells = json.loads(nb_path.read_text())["cells"]
        first = "".join(cells[0]["source"])
        own = f"https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/{nb_path.name}"
        assert own == colab_url(nb_path.name, repo, branch)
        assert f"]({own})" in first, f"{nb_path.name}: the Colab badge does not point to {own}"
        text = "".join("".join(c["source"]) for c in cells)
        others = set(re.findall(r"colab\.research\.google\.com/github/[^)\s\"']+", text)) - {own[8:]}
        assert not others, f"{nb_path.name} links other Colab notebooks: {others}"
        installs = re.findall(r"git\+https://github\.com/([\w.-]+/[\w.-]+)", text)
        assert installs and set(installs) == {repo}, f"{nb_path.name}: bootstrap installs {installs}, not {repo}"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The whole course site built from the copies nbval executed in this session (``conftest.py`` keeps them in
    ``MEDGAN_NBVAL_RUN_DIR``): CI executes each notebook once. ``MEDGAN_SITE_DIR`` names a site built already;
    without either, a two-notebook site (00, 01) is built here."""
    from medgan_utils.tools.site import build_site

    given = os.environ.get("MEDGAN_SITE_DIR")
    if given and (Path(given) / "html" / "index.html").is_file():
        return Path(given)
    out = tmp_path_factory.mktemp("site")
    executed = Path(os.environ.get("MEDGAN_NBVAL_RUN_DIR", "")) if os.environ.get("MEDGAN_NBVAL_RUN_DIR") else None
    if executed and all((executed / nb.stem / nb.name).is_file() for nb in NOTEBOOKS):
        build_site(out, from_run=executed, echo=lambda *a, **k: None)
        return out
    build_site(out, notebooks=["00", "01"], echo=lambda *a, **k: None)
    return out


def _pages(site: Path) -> list[Path]:
    return sorted((site / "html" / "notebooks").glob("[0-9][0-9]_*.html"))


def test_site_is_complete_and_loads_nothing_remote(site):
    html = site / "html"
    pages = _pages(site)
    assert len(pages) >= 2 and (html / "search.html").is_file() and (html / "searchindex.js").is_file()
    index = (html / "index.html").read_text()
    positions = [index.find(f"notebooks/{p.name}") for p in pages]
    assert -1 not in positions and positions == sorted(positions), "the table of contents is not in course order"
    assert list((html / "_images").glob("*.png")), "no figures were rendered"
    for page in [html / "index.html", html / "search.html", *pages]:
        found = LOADS_REMOTE.findall(page.read_text())
        assert not found, f"{page.name} loads remote resources: {found[:3]}"
    assert "Open this notebook in Colab" in pages[0].read_text()  # the badge image became a plain link


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(folder: Path):
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1300,1000",
                f"--user-data-dir={tmp_path / 'chromium-profile'}", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    return driver


def _requested(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def _figures_loaded(driver) -> int:
    return driver.execute_script(
        "const imgs = [...document.querySelectorAll('.cell_output img, article img')];"
        "return imgs.filter(i => i.complete && i.naturalWidth > 0).length;")


@pytest.mark.timeout(300)
def test_site_in_headless_chromium(site, tmp_path, monkeypatch):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"Chromium is not installed ({', '.join(missing)} missing): apt-get install -y chromium "
                    "chromium-driver (.ci/run does this)")
    pytest.importorskip("selenium", reason="selenium is not installed: pip install -e '.[dev]'")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager must never download a driver
    pages = _pages(site)
    server = _serve(site / "html")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    driver = _browser(tmp_path)
    try:
        driver.get(f"{base}/notebooks/{pages[0].name}")
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
        assert pages[0].stem[:2] in driver.title
        # Next: the link at the bottom of the page goes to the next notebook in course order.
        nxt = driver.find_element(By.CSS_SELECTOR, "a.right-next")
        driver.execute_script("arguments[0].scrollIntoView();", nxt)
        nxt.click()
        WebDriverWait(driver, 30).until(lambda d: d.current_url.endswith(f"/notebooks/{pages[1].name}"))
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
        WebDriverWait(driver, 30).until(lambda d: _figures_loaded(d) >= 1)
        assert driver.find_elements(By.CSS_SELECTOR, ".cell_output")  # executed outputs are on the page
        if (site / "html" / "_static" / "mathjax").is_dir() and driver.find_elements(By.CSS_SELECTOR, ".math"):
            WebDriverWait(driver, 30).until(  # the local MathJax typesets the formulas
                lambda d: d.find_elements(By.CSS_SELECTOR, ".MathJax, .MathJax_CHTML, .MathJax_SVG, mjx-container"))
        driver.execute_script("document.querySelector('.cell_output img').scrollIntoView({block: 'center'});")
        artefacts = Path(os.environ.get("MEDGAN_TEST_ARTIFACTS", ROOT / "runs" / "test-artifacts"))
        artefacts.mkdir(parents=True, exist_ok=True)
        shot = artefacts / "site_notebook_page.png"
        driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:4] == b"\x89PNG"
        # Search: Sphinx's own index, in the page, no server.
        driver.get(f"{base}/search.html?q=GAN")
        WebDriverWait(driver, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results li, ul.search li"))
        urls, logs = _requested(driver), driver.get_log("browser")
        for page in [*pages[2:], site / "html" / "results.html", site / "html" / "instructor.html"]:
            if page.is_file():  # every other page: the same checks on requests and the console
                driver.get(f"{base}/{page.relative_to(site / 'html').as_posix()}")
                WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
                urls += _requested(driver)
                logs += driver.get_log("browser")
    finally:
        driver.quit()
        server.shutdown()
    remote = [u for u in urls if not u.startswith((base, "data:", "blob:", "about:", "chrome"))]
    assert urls and not remote, f"requests outside the site: {remote[:5]}"
    errors = [e["message"] for e in logs if e["level"] == "SEVERE"]
    assert not errors, f"console errors: {errors[:5]}"


def _rows(text: str) -> dict:
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| (\d\d_\w+) \|.*$", text, re.M)}


def _seconds(text: str) -> list[str]:
    return re.findall(r"(\d+(?:\.\d+)?) s\b", text)


def test_instructor_timings_match_benchmarks():
    bench = (ROOT / "BENCHMARKS.md").read_text().split("## Notebook wall times")[1].split("\n## ")[0]
    doc = (ROOT / "docs" / "instructor.md").read_text()
    table = doc.split("## Measured timings")[1].split("\n## ")[0]
    measured, quoted = _rows(bench), _rows(table)
    assert quoted and set(quoted) == set(measured), "the instructor table must list every measured notebook"
    for nb, line in quoted.items():
        numbers = _seconds(line)
        assert numbers and set(numbers) <= set(_seconds(measured[nb])), f"{nb}: {numbers} not in BENCHMARKS.md"
    schedules = doc.split("## Schedules")[1].split("\n## Offline")[0]
    assert set(_seconds(schedules)) <= set(_seconds(bench)), "a schedule quotes a time BENCHMARKS.md does not have"
    for needed in ("medgan data fetch --all", "medgan env", "show_solution", "MEDGAN_FAST=1", "Colab", "checklist"):
        assert needed in doc


def test_ci_executes_each_notebook_once():
    """nbval runs the notebooks first and keeps the executed copies; the site is built from them, not re-run."""
    commands = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
                if ln.strip() and not ln.strip().startswith("#")]
    assert not [c for c in commands if re.search(r"\bmedgan (site|run|sweep)\b", c)], commands
    assert "pytest" in commands
    testpaths = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"]
    assert testpaths[0] == "notebooks"
    conftest = (ROOT / "conftest.py").read_text()
    assert "MEDGAN_NBVAL_RUN_DIR" in conftest and "def pytest_runtest_teardown" in conftest


def test_the_colab_badge_has_a_text_link_that_works_offline(tmp_path):
    """Offline the badge is a broken image: every notebook puts a plain text link next to it, and the site keeps
    only the text link."""
    from medgan_utils.tools.site import offline_notebook

    for nb_path in NOTEBOOKS:
        first = "".join(json.loads(nb_path.read_text())["cells"][0]["source"])
        url = colab_url(nb_path.name, *[tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["medgan"][k]
                                        for k in ("repository", "branch")])
        assert f"[Open this notebook in Colab]({url})" in first, f"{nb_path.name}: no text fallback for the badge"
    offline_notebook(NOTEBOOKS[0], tmp_path / NOTEBOOKS[0].name)
    first = "".join(json.loads((tmp_path / NOTEBOOKS[0].name).read_text())["cells"][0]["source"])
    assert "colab-badge.svg" not in first and first.count("Open this notebook in Colab") == 1
