"""The playground end to end: the real `firstnet serve`, Debian's headless Chromium, a digit drawn with the mouse."""

import http.client
import contextlib
import os
import pathlib
import shutil
import subprocess
import sys
import time
import urllib.parse

import numpy as np
import pytest
from PIL import Image

from conftest import lacking

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,900")


@contextlib.contextmanager
def serving(*arguments, cwd, env=None):
    """`python -m firstnet serve ARGUMENTS --port 0` while the block runs; yields (its URL, what it printed first)."""
    process = subprocess.Popen([sys.executable, "-m", "firstnet", "serve", *map(str, arguments), "--port", "0"],
                               cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"})
    transcript = []
    try:
        for line in process.stdout:
            transcript.append(line)
            if line.startswith("firstnet playground: "):
                break
        else:
            raise AssertionError("firstnet serve stopped before printing its URL:\n" + "".join(transcript))
        url = line.split()[2]
        # This computer's own address (a loopback one: --host 127.0.0.2 stands for a school network in tests).
        assert url.startswith("http://127."), line
        yield url, transcript
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(trained_run, tmp_path_factory):
    """`python -m firstnet serve` on a free port of 127.0.0.1; yields the URL it prints."""
    with serving("--model", trained_run.run_dir, cwd=tmp_path_factory.mktemp("serve")) as (url, transcript):
        assert any(f"model: {trained_run.run_dir}" in seen for seen in transcript), transcript
        yield url


def base_url(url):
    """The page's address without the teacher's token: what a student opens, or the teacher once the cookie is set."""
    return url.split("?")[0]


def with_query(url, query):
    """The teacher's link (which has ?token=) with a link's own settings added: `query` is "?epochs=2&..."."""
    return url + ("&" + query.lstrip("?") if "?" in url else query)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def chromium(profile):
    """A headless Chromium with a profile (its cookies: a role) of its own."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        lacking(f"{' and '.join(missing)} not found: the browser tests need Debian's chromium and chromium-driver "
                "(apt-get install chromium chromium-driver; .ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # A driver path given explicitly means Selenium Manager never looks for (or downloads) a browser or driver.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    return driver


def wait_for(check, timeout=60, message="the page did not get there"):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.1)


def open_page(browser, url):
    browser.get(url)
    info = browser.find_element("id", "model-info")
    wait_for(lambda: "test accuracy" in info.text, message="the page never showed the model's test accuracy")


def draw(browser, strokes):
    """Draw strokes with the mouse; each stroke is a list of (x, y) in 0..1 of the pad's size."""
    from selenium.webdriver.common.action_chains import ActionChains

    pad = browser.find_element("id", "pad")
    width, height = pad.size["width"], pad.size["height"]

    def offset(point):
        # Selenium measures offsets from the element's centre.
        return round((point[0] - 0.5) * width), round((point[1] - 0.5) * height)

    for stroke in strokes:
        actions = ActionChains(browser, duration=20)
        actions.move_to_element_with_offset(pad, *offset(stroke[0])).click_and_hold()
        for start, end in zip(stroke, stroke[1:]):
            for step in range(1, 9):
                fraction = step / 8
                point = (start[0] + (end[0] - start[0]) * fraction, start[1] + (end[1] - start[1]) * fraction)
                actions.move_to_element_with_offset(pad, *offset(point))
        actions.release().perform()


def settled_answer(browser, what):
    """Wait until the page has answered the last change and is no longer busy; return that answer."""
    panel = browser.find_element("css selector", ".answer")
    wait_for(lambda: panel.get_attribute("aria-busy") == "false" and answer(browser)[0] != "?",
             message=f"no prediction appeared after {what}")
    return answer(browser)


def answer(browser):
    """The digit shown, and for each of the bars: (label, width fraction, is it the winner)."""
    digit = browser.find_element("id", "digit").text
    bars = browser.execute_script("""
        return [...document.querySelectorAll('#bars li')].map((item) => [
            item.querySelector('.label').textContent,
            item.querySelector('.fill').getBoundingClientRect().width / item.querySelector('.track').getBoundingClientRect().width,
            item.classList.contains('winner')]);""")
    return digit, bars


def save_screenshot(browser, tmp_path, name):
    path = tmp_path / name
    assert browser.save_screenshot(str(path)), "the screenshot could not be taken"
    assert Image.open(path).size[0] > 500
    if os.environ.get("FIRSTNET_SCREENSHOT_DIR"):
        target = pathlib.Path(os.environ["FIRSTNET_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return path


def test_drawing_a_one_shows_a_prediction_and_ten_bars(server, browser, tmp_path):
    open_page(browser, server)
    assert browser.find_element("id", "digit").text == "?"
    draw(browser, [[(0.52, 0.15), (0.47, 0.85)]])
    digit, bars = settled_answer(browser, "drawing a 1")
    # The bars grow with a short transition; read their widths once it is over.
    time.sleep(0.5)
    digit, bars = answer(browser)
    assert "error" not in browser.find_element("id", "message").get_attribute("class")
    assert [label for label, _, _ in bars] == [str(number) for number in range(10)]
    winners = [label for label, _, is_winner in bars if is_winner]
    assert winners == [digit]
    assert sum(width for _, width, _ in bars) == pytest.approx(1.0, abs=0.02)
    assert digit == "1", f"a drawn 1 was read as {digit}: {bars}"
    assert len(browser.find_elements("css selector", "#units li")) == 8
    # The 28x28 picture the network saw was drawn: it has bright pixels.
    brightest = browser.execute_script(
        "const data = document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data;"
        "let most = 0; for (let i = 0; i < data.length; i += 4) most = Math.max(most, data[i]); return most;")
    assert brightest > 200
    save_screenshot(browser, tmp_path, "web-drawn-1.png")


def test_drawing_a_seven_then_escape_clears(server, browser, tmp_path):
    open_page(browser, server)
    draw(browser, [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]])
    digit, bars = settled_answer(browser, "drawing a 7")
    save_screenshot(browser, tmp_path, "web-drawn-7.png")
    assert digit == "7", f"a drawn 7 was read as {digit}: {bars}"
    browser.find_element("tag name", "body").send_keys("\ue00c")  # Escape
    wait_for(lambda: answer(browser)[0] == "?", timeout=10, message="Escape did not clear the page")
    # The bars shrink with a short transition.
    wait_for(lambda: all(width == 0 for _, width, _ in answer(browser)[1]), timeout=10, message="Escape left bars behind")


def test_uploading_a_picture(server, browser, tmp_path, mnist):
    open_page(browser, server)
    index = int(np.flatnonzero(mnist.y_test == 4)[0])
    picture = tmp_path / "four.png"
    Image.fromarray(255 - mnist.x_test[index]).resize((200, 200)).save(picture)
    browser.find_element("id", "upload").send_keys(str(picture))
    assert settled_answer(browser, "uploading a picture")[0] == "4"
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    browser.find_element("id", "upload").send_keys(str(text))
    message = browser.find_element("id", "message")
    wait_for(lambda: "notes.png: not a picture" in message.text, message="a broken upload did not say what is wrong")


def test_nothing_is_loaded_from_outside(server, browser):
    """The page and the API docs work offline: every resource they load comes from the server itself."""
    origin = base_url(server)
    for path in ("", "docs"):
        browser.get(origin + path)
        if path == "docs":
            title = browser.find_element("css selector", ".swagger-ui .info .title") if wait_for(
                lambda: browser.find_elements("css selector", ".swagger-ui .info .title")) else None
            assert "firstnet playground" in title.text
            assert browser.find_elements("css selector", ".opblock-summary-path[data-path='/api/predict']")
        loaded = browser.execute_script("return performance.getEntriesByType('resource').map((entry) => entry.name)")
        assert loaded, "nothing was loaded"
        outside = [name for name in loaded if not name.startswith(origin) and not name.startswith("data:")]
        assert not outside, outside


def test_a_chunked_body_over_two_megabytes_is_cut_off_by_the_real_server(server):
    address = urllib.parse.urlsplit(server)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    connection.putrequest("POST", "/api/predict")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Transfer-Encoding", "chunked")
    # A program (not the page) proves itself with the teacher's token, as the server's origin check asks.
    connection.putheader("Authorization", "token " + urllib.parse.parse_qs(address.query)["token"][0])
    connection.endheaders()
    chunk = b"z" * 65536
    try:
        for _ in range(3 * 16):  # 3 MB in 64 KB chunks, no Content-Length anywhere.
            connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        connection.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # The server may stop listening once it has refused the body; its answer is already on the way.
    response = connection.getresponse()
    assert response.status == 413
    assert b"2 MB" in response.read()
    connection.close()


def test_the_page_names_the_run_without_the_servers_folders(server, browser, trained_run):
    """A student's page says which run answers by its name; the teacher's folders stay on the teacher's terminal."""
    browser.get(base_url(server))
    shown = wait_for(lambda: browser.find_element("id", "model-info").text.startswith("Model ")
                     and browser.find_element("id", "model-info").text)
    assert f"Model {trained_run.run_dir.name} · test accuracy" in shown
    assert str(trained_run.run_dir.parent) not in browser.page_source
