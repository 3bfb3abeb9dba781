"""visionfw.studies.report_html (with report_images and report_page): the crop finder on hand-made errors,
the page's structure and numbers, and the page in a real headless Chromium (from file://: no console error,
not blank, zoom works)."""

import base64
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from visionfw.errors import ConfigError
from visionfw.studies import report_html as rh
from visionfw.studies import report_images as ri
from visionfw.studies import report_page as rp

# --------------------------------------------------------------------------- crop finder


def test_find_windows_finds_the_hand_placed_block_and_then_a_disjoint_one():
    score = np.zeros((40, 50))
    score[20:28, 30:38] = 1.0  # the block: any 8x8 window exactly on it scores 64
    score[2:6, 3:7] = 2.0  # a smaller, brighter block: 16 cells x 2 = 32
    (first, second) = ri.find_windows(score, 8, count=2)
    assert first == (20, 30)
    # the second window may not overlap the first; the best remaining one covers the small block
    y, x = second
    assert y <= 2 and y + 8 >= 6 and x <= 3 and x + 8 >= 7
    assert not (abs(y - 20) < 8 and abs(x - 30) < 8)


def test_find_windows_clips_the_size_and_avoids_given_windows():
    score = np.arange(12.0).reshape(3, 4)
    assert ri.find_windows(score, 10) == [(0, 0)]  # the window is the whole map
    assert ri.find_windows(score, (1, 2)) == [(2, 2)]  # 10 + 11
    assert ri.find_windows(score, (1, 2), avoid=[(2, 2)]) == [(2, 0)]  # 8 + 9 (2,1) overlaps (2,2)
    with pytest.raises(ConfigError):
        ri.find_windows(np.zeros(5), 2)


def synthetic_image(h=64, w=80, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    hr = np.stack([0.5 + 0.2 * np.sin(9 * xx), 0.5 + 0.2 * np.cos(7 * yy), 0.5 + 0.2 * np.sin(5 * (xx + yy))], -1)
    return np.clip(hr + 0.03 * rng.standard_normal(hr.shape), 0.2, 0.8)  # room for the offsets below


def test_choose_crops_finds_where_the_models_differ_and_where_the_best_gains():
    hr = synthetic_image()
    good = hr.copy()
    good[40:56, 8:24] += 0.02  # good is exact except a faint patch
    bad = hr.copy()
    bad[10:26, 50:66] = 0.5  # bad wipes out one region: the models differ there
    bicubic = hr - 0.05
    bicubic[40:56, 8:24] = hr[40:56, 8:24]  # bicubic is exact there: good's gain is lowest here
    bicubic[30:46, 60:76] -= 0.15  # and worst here: good (exact) gains most
    outputs = {"bicubic": bicubic, "good": good, "bad": bad}
    crops = ri.choose_crops(hr, outputs, size=16, border=2)
    assert [c["why"] for c in crops] == ["where good and bad differ most", "largest gain of good over bicubic"]
    assert [(c["y"], c["x"], c["h"], c["w"]) for c in crops] == [(10, 50, 16, 16), (30, 60, 16, 16)]
    # ranking by given PSNRs swaps best and worst
    swapped = ri.choose_crops(hr, outputs, size=16, border=2, psnr={"good": 20.0, "bad": 30.0})
    assert swapped[0]["why"] == "where bad and good differ most"


def test_choose_crops_for_one_model_shows_its_gain_and_its_largest_error():
    hr = synthetic_image()
    model = hr.copy()
    model[0:12, 0:12] = 0.0  # the model's only error: top-left corner
    bicubic = hr.copy()
    bicubic[44:60, 60:76] -= 0.15  # bicubic's only error: bottom right
    crops = ri.choose_crops(hr, {"bicubic": bicubic, "m": model}, size=16, border=0)
    assert crops[0]["why"] == "largest gain of m over bicubic" and (crops[0]["y"], crops[0]["x"]) == (44, 60)
    assert crops[1]["why"] == "largest remaining error of m"
    assert crops[1]["y"] == 0 and crops[1]["x"] == 0


def test_crop_psnr_by_hand():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0] = 255  # Y differs by 219/255 on 1 of 16 pixels
    mse = (219 / 255) ** 2 / 16
    assert ri.crop_psnr(b, a) == pytest.approx(10 * np.log10(1 / mse), abs=1e-9)
    assert ri.crop_psnr(a, a) == float("inf")


# --------------------------------------------------------------------------- the page


def synthetic_result(models=("alpha", "beta")):
    """A compare-like result (no real run): two sets of two images, the rows' numbers made up."""
    rows = []
    for k, m in enumerate(models):
        metrics = {}
        for ds in ("SetA", "SetB"):
            images = [
                {
                    "name": f"img{i}",
                    "psnr": 30.0 + k + i / 3,
                    "ssim": 0.9 + 0.01 * k,
                    "bicubic_psnr": 29.5,
                    "bicubic_ssim": 0.88,
                    "gain_psnr": 0.5 + k + i / 3,
                }
                for i in range(2)
            ]
            metrics[ds] = {
                "psnr": float(np.mean([r["psnr"] for r in images])),
                "ssim": 0.9 + 0.01 * k,
                "bicubic_psnr": 29.5,
                "bicubic_ssim": 0.88,
                "images": images,
            }
        rows.append(
            {
                "model": m,
                "weights": "official x.mat" if k == 0 else "trained 10 steps on embedded photos",
                "params": 1000 * (k + 1) ** 3,
                "macs": 2e8 * (k + 1) ** 2,
                "latency_ms": 1.5 + k,
                "peak_mem_mb": 3.25,
                "act_mem_mb": 1.0,
                "metrics": metrics,
            }
        )
    rows.append(
        {
            "model": "bicubic",
            "weights": "-",
            "params": 0,
            "macs": None,
            "latency_ms": None,
            "peak_mem_mb": None,
            "act_mem_mb": None,
            "metrics": {ds: {"psnr": 29.5, "ssim": 0.88} for ds in ("SetA", "SetB")},
        }
    )
    return {
        "rows": rows,
        "datasets": ["SetA", "SetB"],
        "scale": 2,
        "protocol": "srcnn",
        "protocol_description": "Y of uint8 RGB, shave 2 px",
        "input_size": [64, 64],
        "device": "cpu",
        "memory_method": "test",
        "latency_runs": 3,
        "warmup": 1,
        "date": "2026-01-01",
    }


def synthetic_entries(result, size=48):
    entries = []
    for ds in result["datasets"]:
        for i in range(2):
            hr = synthetic_image(size, size + 16, seed=i)
            outputs = {"bicubic": hr - 0.08}
            numbers = {"bicubic": {"psnr": 29.5, "ssim": 0.88}}
            for k, r in enumerate(row for row in result["rows"] if row["model"] != "bicubic"):
                out = hr.copy()
                out[8 * k : 8 * k + 12, 10:30] = 0.5
                outputs[r["model"]] = out
                numbers[r["model"]] = r["metrics"][ds]["images"][i]
            entries.append(ri.image_entry(ds, f"img{i}", hr, outputs, numbers, crop_size=16, border=2))
    return entries


def build_synthetic_page(folder, max_mb=rp.DEFAULT_MAX_MB):
    result = synthetic_result()
    entries = synthetic_entries(result)
    models = [r["model"] for r in result["rows"] if r["model"] != "bicubic"]
    meta_lines, notes, sections = rh.compare_sections(result)
    page, notices = rp.build_page(
        "synthetic",
        meta_lines=meta_lines,
        notes=notes,
        sections=sections,
        entries=entries,
        models=models,
        max_mb=max_mb,
    )
    path = Path(folder) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path, result, notices


class PageParser(HTMLParser):
    """Collects images (src), table cells (data-v, text) and crops' attributes; fails on bad nesting."""

    def __init__(self):
        super().__init__()
        self.images, self.cells, self.crops, self.stack, self.scripts = [], [], [], [], []
        self._cell = None
        self._script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("img", "image"):
            self.images.append(a.get("src") or a.get("href"))
        if tag == "img" and "crop" in (a.get("class") or ""):
            self.crops.append(a)
        if tag == "td":
            self._cell = [a.get("data-v"), ""]
        if tag == "script":
            self._script = True
            self.scripts.append(a)
        if tag not in ("img", "meta", "link", "input", "br", "image", "rect", "circle", "line", "polyline"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in ("image", "rect", "circle", "line", "polyline"):
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()
        if tag == "td":
            self.cells.append(tuple(self._cell))
            self._cell = None
        if tag == "script":
            self._script = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data


def parse_page(path):
    p = PageParser()
    p.feed(Path(path).read_text(encoding="utf-8"))
    p.close()
    assert p.stack == [], f"unclosed tags {p.stack}"
    return p


def test_page_parses_embeds_every_image_and_shows_the_json_numbers(tmp_path):
    from PIL import Image

    path, result, notices = build_synthetic_page(tmp_path)
    assert notices == []
    page = parse_page(path)
    # every image is embedded as a decodable PNG: nothing to fetch
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    for src in page.images:
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    assert all(s.get("src") is None for s in page.scripts)  # inline script only
    text = path.read_text()
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text
    # 2 sets x 2 images x 2 crops x (HR + bicubic + 2 models)
    assert len(page.crops) == 2 * 2 * 2 * 4
    values = [float(v) for v, _ in page.cells if v]
    for row in result["rows"]:
        for ds in result["datasets"]:
            m = row["metrics"][ds]
            assert m["psnr"] in values and m["ssim"] in values  # the table's exact numbers
            for im in m.get("images", ()):
                assert im["psnr"] in values and im["gain_psnr"] in values  # per image and the gain view
    shown = {(v, t) for v, t in page.cells if v}
    alpha = result["rows"][0]["metrics"]["SetA"]
    assert (repr(alpha["psnr"]), f"{alpha['psnr']:.3f}") in shown  # shown rounded, same value
    # the trained-here note
    assert "beta come from models trained here" in text


def test_page_cap_leaves_crops_out_with_a_message(tmp_path):
    full, _, _ = build_synthetic_page(tmp_path / "full")
    path, _, notices = build_synthetic_page(tmp_path, max_mb=(full.stat().st_size - 30000) / 1e6)
    assert len(notices) == 1 and "left out to keep the page under" in notices[0] and "--report_max_mb" in notices[0]
    assert notices[0] in Path(path).read_text()
    assert path.stat().st_size < full.stat().st_size
    with pytest.raises(ConfigError):
        rp.build_page("x", max_mb=0)


def test_rank_page_has_matrix_and_histograms(tmp_path):
    result = rank_result()
    path = rh.write_rank_report(result, tmp_path)
    page = parse_page(path)
    values = [float(v) for v, _ in page.cells if v]
    assert 1.25 in values and 1.5 in values and 0.25 in values
    text = path.read_text()
    assert text.count("<polyline") == 2 and "T91 (mean +1.25)" in text and "BSD (mean +1.50)" in text


def rank_result():
    from visionfw.studies.rank_datasets import rank_matrix

    return {
        "table": rank_matrix({"Set5": {"T91": 1.25, "BSD": 1.5}}),
        "per_image": {"Set5": {"T91": [1.0, 1.5], "BSD": [1.25, 1.75]}},
        "model": "srcnn_915",
        "scale": 2,
        "steps": 10,
        "seed": 0,
        "protocol": "srcnn",
        "protocol_description": "Y",
        "bicubic_psnr": {"Set5": 33.5},
        "markdown": "table",
        "computed": {"train": 0, "eval": 0},
        "files": {},
    }


def test_cli_rank_datasets_writes_the_page_unless_noreport(tmp_path, monkeypatch, capsys):
    import visionfw.studies.rank_datasets as rd
    from visionfw.cli import run

    monkeypatch.setattr(rd, "rank_datasets", lambda *a, **k: rank_result())  # the ranking itself is tested elsewhere
    assert run(["visionfw", "rank-datasets", "--model=srcnn_915", f"--out={tmp_path}"]) == 0
    assert f"report: {tmp_path / 'report.html'}" in capsys.readouterr().out
    assert "T91 (mean +1.25)" in (tmp_path / "report.html").read_text()
    (tmp_path / "report.html").unlink()
    assert run(["visionfw", "rank-datasets", "--model=srcnn_915", f"--out={tmp_path}", "--noreport"]) == 0
    assert not (tmp_path / "report.html").exists()


# --------------------------------------------------------------------------- a real browser


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """Headless Chromium driven over the DevTools protocol (websocket-client)."""

    FLAGS = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--remote-debugging-port=0",
        "--window-size=1200,1600",
        "--hide-scrollbars",
    ]

    def __init__(self, exe):
        import websocket

        self.profile = tempfile.mkdtemp(prefix="vfw-chromium-")
        self.proc = subprocess.Popen(
            [exe, *self.FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.time() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                pytest.fail("chromium did not start its DevTools endpoint within 60 s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            target = next(t for t in json.load(r) if t["type"] == "page")
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.next_id, self.events = 0, []
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(method)

    def evaluate(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def requested_urls(self):
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def errors(self):
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                out.append(p["exceptionDetails"].get("exception", {}).get("description") or str(p))
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", ())))
            elif e.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out

    def close(self):
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    exe = find_chromium()
    if exe is None:
        pytest.skip("no chromium on PATH (.ci/run installs Debian's `chromium` where apt can)")
    pytest.importorskip("websocket", reason="websocket-client (in the [test] extra) drives the browser")
    b = Browser(exe)
    yield b
    b.close()


def crop_width(browser):
    return browser.evaluate("document.querySelector('img.crop').getBoundingClientRect().width")


def test_page_in_headless_chromium(browser, tmp_path):
    from PIL import Image

    path, _, _ = build_synthetic_page(tmp_path)
    browser.call("Page.navigate", url=path.as_uri() + "#zoom=1")
    browser.wait_event("Page.loadEventFired")
    assert browser.evaluate("document.title") == "synthetic"
    assert browser.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    w1 = crop_width(browser)
    assert w1 == pytest.approx(16 + 4)  # 16 px crop at 1x, plus its 2 px border
    shot = browser.call("Page.captureScreenshot", format="png")["data"]
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(shot))).convert("L"), np.float64)
    assert img.shape[0] > 100 and img.std() > 10  # not blank
    if os.environ.get("VISIONFW_REPORT_SCREENSHOT"):
        Path(os.environ["VISIONFW_REPORT_SCREENSHOT"]).write_bytes(base64.b64decode(shot))
    # the address's #zoom=N, the row's slider and a click each change the rendered size, pixels stay pixels
    browser.evaluate("location.hash = '#zoom=4'")
    browser.evaluate("new Promise(r => setTimeout(r, 50))")
    assert crop_width(browser) == pytest.approx(16 * 4 + 4)
    assert browser.evaluate("getComputedStyle(document.querySelector('img.crop')).imageRendering") == "pixelated"
    browser.evaluate(
        "(() => { const s = document.querySelector('.croprow input.zoom'); s.value = 6;"
        " s.dispatchEvent(new Event('input')); })()"
    )
    widths = browser.evaluate(
        "Array.from(document.querySelector('.croprow').querySelectorAll('img.crop'))"
        ".map(i => i.getBoundingClientRect().width)"
    )
    assert widths == [16 * 6 + 4] * 4  # the whole row zooms together
    assert (
        browser.evaluate(
            "document.querySelectorAll('.croprow')[1].querySelector('img.crop').getBoundingClientRect().width"
        )
        == 16 * 4 + 4
    )  # other rows keep theirs
    browser.evaluate("document.querySelector('img.crop').click()")
    assert crop_width(browser) == pytest.approx(16 * 8 + 4)  # a click doubles, up to 8x
    browser.evaluate("document.querySelector('img.crop').click()")
    assert crop_width(browser) == pytest.approx(16 + 4)  # and from 8x back to 1x
    # sorting by the first PSNR column puts beta (the higher) first when sorted descending
    browser.evaluate(
        "(() => { const th = Array.from(document.querySelectorAll('table')[0].tHead.rows[0].cells)"
        ".find(c => c.textContent === 'SetA PSNR'); th.click(); th.click(); })()"
    )
    assert browser.evaluate("document.querySelector('table').tBodies[0].rows[0].cells[0].textContent") == "beta"
    assert browser.errors() == []
    # nothing but the file itself and its embedded data: no network
    assert all(u.startswith(("file:", "data:")) for u in browser.requested_urls()), browser.requested_urls()


# --------------------------------------------------------------------------- the commands


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    from conftest import write_noise_images

    root = tmp_path_factory.mktemp("report_data")
    write_noise_images(root / "Tiny", 2, 32, 0)
    return root / "Tiny"


def test_compare_report_numbers_equal_the_json_and_survive_the_cache(tiny_sets, tmp_path):
    from visionfw.studies.compare import compare_models

    models = [
        {"label": "fsrcnn_a", "model": "fsrcnn", "hyper": {"d": 8, "s": 4, "m": 1}},
        {"label": "espcn_a", "model": "espcn", "hyper": {"n1": 8, "n2": 4}},
    ]
    kw = dict(out=tmp_path, input_size=(8, 8), latency_runs=1, warmup=1, report=True)
    result = compare_models(models, [str(tiny_sets)], 2, **kw)
    page_path = Path(result["files"]["report"])
    assert page_path == tmp_path / "report.html"
    saved = json.loads((tmp_path / "compare.json").read_text())
    page = parse_page(page_path)
    values = {float(v) for v, _ in page.cells if v}
    for row in saved["rows"]:
        m = row["metrics"]["Tiny"]
        assert {m["psnr"], m["ssim"]} <= values
        for im in m.get("images", ()):
            assert {im["psnr"], im["ssim"], im["gain_psnr"]} <= values
    # 2 images x 1 crop (the 48 px window covers the whole 28x28 shaved image) x (HR, bicubic, 2 models)
    assert len(page.crops) == 2 * 1 * 4
    assert "kept random weights: their numbers mean nothing" in page_path.read_text()
    # a rerun takes every number from the cache and still has the outputs for the page
    page_path.unlink()
    again = compare_models(models, [str(tiny_sets)], 2, **kw)
    assert again["computed"]["eval"] == 0 and page_path.is_file()
    # outputs deleted: evaluated again to save them, same numbers
    shutil.rmtree(tmp_path / "sr_images")
    third = compare_models(models, [str(tiny_sets)], 2, **kw)
    assert third["computed"]["eval"] == 2
    assert [r["metrics"]["Tiny"]["psnr"] for r in third["rows"]] == [
        r["metrics"]["Tiny"]["psnr"] for r in result["rows"]
    ]


def test_cli_test_report_for_one_model(tiny_sets, tmp_path, capsys):
    from visionfw.cli import run

    page_path = tmp_path / "one.html"
    argv = [
        "visionfw",
        "test",
        "--model=espcn",
        "--allow_random",
        "--scale=2",
        f"--test_data={tiny_sets}",
        f"--report={page_path}",
        f"--results={tmp_path / 'r.json'}",
        "--noprogress",
    ]
    capsys.readouterr()
    status = run(argv)  # the console script's entry point, in this process
    stdout, stderr = capsys.readouterr()
    assert status == 0, stderr[-2000:]
    assert f"report: {page_path}" in stdout
    saved = json.loads((tmp_path / "r.json").read_text())
    page = parse_page(page_path)
    values = {float(v) for v, _ in page.cells if v}
    r = saved["results"]["Tiny"]
    assert {r["psnr"], r["ssim"], r["bicubic_psnr"], r["gain_psnr"]} <= values
    assert len(page.crops) == 2 * 1 * 3  # 2 images x 1 crop (the whole image) x (HR, bicubic, espcn)
    text = page_path.read_text()
    assert "largest gain of espcn over bicubic" in text
    assert "espcn has random weights" in text


def test_the_browser_check_sees_console_errors_and_missing_images(browser, tmp_path):
    """The no-error assertion above can fail: a script error and a missing image are both caught."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><link rel="icon" href="data:,"><title>b</title></head><body>'
        '<img src="missing.png"><script>console.error("boom"); notDefined();</script></body></html>'
    )
    browser.events.clear()
    browser.call("Page.navigate", url=page.as_uri())
    browser.wait_event("Page.loadEventFired")
    errors = " | ".join(map(str, browser.errors()))
    assert "boom" in errors and "notDefined" in errors and "missing.png" in errors
