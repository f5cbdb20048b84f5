"""Training from the page in real headless Chromium: knobs from the link, curves and weights live, then a drawn digit."""

import os

import pytest

import test_web_browser
from test_web_browser import base_url, chromium, draw, save_screenshot, settled_answer, wait_for, with_query

pytestmark = pytest.mark.browser

# The same headless Chromium as the playground's browser tests (a module-scoped fixture).
browser = test_web_browser.browser

# A run of a few seconds that still reads drawn digits well: 10,000 digits, two epochs, 128 hidden units.
LINK = "?epochs=2&train_digits=10000&batch_size=32&hidden_units=128&seed=0&validation_split=0.1&hide=optimizer,learning_rate"

# Each picture of the first unit's weights the page draws, as a short fingerprint of its pixels.
RECORD_WEIGHTS = """
window.weightPrints = [];
new MutationObserver(() => {
  const picture = document.querySelector('#live-weights canvas');
  if (!picture) return;
  const pixels = picture.getContext('2d').getImageData(0, 0, picture.width, picture.height).data;
  let print = 0;
  for (let i = 0; i < pixels.length; i += 1) print = (print * 31 + pixels[i]) % 1000000007;
  window.weightPrints.push(print);
}).observe(document.getElementById('live-weights'), { attributes: true, attributeFilter: ['data-drawn'] });
"""


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory, mnist_path):
    """`firstnet serve --data MNIST` with no trained model yet, on a free port; yields the URL it prints."""
    folder = tmp_path_factory.mktemp("serve-live")
    environment = dict(os.environ)
    environment.pop("FIRSTNET_DATA", None)  # Only --data says where the digits are.
    with test_web_browser.serving("--root", folder / "runs", "--data", mnist_path, cwd=folder, env=environment) as (url, _):
        yield url


def status_text(browser):
    return browser.find_element("id", "live-status").text


def points(page):
    """How many points the page's loss curve has drawn."""
    return int(page.find_element("id", "live-loss").get_attribute("data-points") or 0)


@pytest.fixture
def student(tmp_path):
    """A student's browser: a profile of its own (no teacher's cookie), opening the link without the token."""
    driver = chromium(tmp_path / "student-profile")
    yield driver
    driver.quit()


def test_train_from_the_page_watch_it_learn_then_draw(empty_server, browser, student, tmp_path):
    browser.get(with_query(empty_server, LINK))
    # The link preset the knobs and hid two of them.
    assert browser.find_element("name", "epochs").get_attribute("value") == "2"
    assert browser.find_element("name", "hidden_units").get_attribute("value") == "128"
    assert not browser.find_element("css selector", "[data-knob=optimizer]").is_displayed()
    assert browser.find_element("css selector", "[data-knob=seed]").is_displayed()
    wait_for(lambda: "No trained model" in browser.find_element("id", "model-info").text)
    assert browser.find_element("id", "no-model-title").text == "No trained model yet"
    assert browser.find_element("id", "train-button").is_displayed()
    # A student is told who trains, and gets no button to do it.
    student.get(base_url(empty_server))
    wait_for(lambda: "student" in student.find_element("tag name", "body").get_attribute("class"),
             message="not a student's page")
    wait_for(lambda: student.find_element("id", "no-model").is_displayed(), message="a student saw no banner")
    assert student.find_element("id", "no-model-title").text == "The teacher has not trained a model yet"
    assert not student.find_element("id", "train-button").is_displayed()
    assert not student.find_element("id", "live-start").is_displayed()
    assert not student.find_element("id", "knobs").is_displayed()
    assert "teacher starts a run" in status_text(student)

    browser.execute_script(RECORD_WEIGHTS)
    browser.find_element("id", "live-start").click()
    wait_for(lambda: points(browser) >= 1, timeout=180, message="no point of the loss curve arrived")
    # The banner's progress comes from the live panel's one event stream, on the teacher's page and the student's.
    wait_for(lambda: student.find_element("id", "train-status").text, message="the student's banner showed no progress")
    wait_for(lambda: "saved" in status_text(browser), timeout=180, message="the run did not finish on the page")
    assert points(browser) >= 4, f"only {points(browser)} curve points were drawn"
    wait_for(lambda: "saved" in status_text(student), timeout=30, message="the student's page did not follow the run")
    assert points(student) == points(browser)
    prints = browser.execute_script("return window.weightPrints")
    assert len(set(prints)) >= 2, f"the weights pictures never changed: {prints}"
    assert len(browser.find_elements("css selector", "#live-weights canvas")) == 8
    strip = browser.find_elements("css selector", "#live-strip > div")
    assert len(strip) == 16 and all(cell.get_attribute("class") in ("right", "wrong") for cell in strip)
    assert sum(cell.get_attribute("class") == "right" for cell in strip) >= 12
    assert len(browser.find_elements("css selector", "#live-confusion tr")) == 11
    assert "after 2 epochs" in browser.find_element("id", "live-confusion-title").text
    assert "test accuracy" in status_text(browser)
    browser.execute_script("document.getElementById('live').scrollIntoView()")
    save_screenshot(browser, tmp_path, "live-training.png")

    # The new run now answers drawings, on both pages: each asked /api/model once, when the stream said "saved".
    for page in (browser, student):
        wait_for(lambda page=page: "test accuracy" in page.find_element("id", "model-info").text,
                 message="the page did not load the model it trained")
        assert "128 hidden units" in page.find_element("id", "model-info").text
        assert not page.find_element("id", "no-model").is_displayed()
    browser.execute_script("document.getElementById('pad').scrollIntoView({block: 'center'})")
    draw(browser, [[(0.52, 0.15), (0.47, 0.85)]])
    digit, bars = settled_answer(browser, "drawing a 1 after training")
    assert digit == "1", f"a drawn 1 was read as {digit}: {bars}"


def test_pause_resume_and_stop_from_the_page_and_the_projector_follows(empty_server, browser, tmp_path):
    # All 60,000 digits for five epochs: long enough to pause, resume and stop it by hand.
    browser.get(with_query(empty_server, "?seed=1&hidden_units=64"))
    buttons = {name: browser.find_element("id", f"live-{name}") for name in ("start", "pause", "resume", "stop")}
    # The teacher's controls show once the page has learnt its role from the server: not at the first paint.
    wait_for(lambda: buttons["start"].is_displayed() and buttons["start"].is_enabled(), timeout=60,
             message="the teacher's start button never showed")
    buttons["start"].click()
    # The page first shows the last run (replayed); the new one's first curve point says "step".
    wait_for(lambda: " · step " in status_text(browser), timeout=180, message="no point of the new run's curve arrived")
    assert not buttons["start"].is_enabled()
    buttons["pause"].click()
    wait_for(lambda: "paused" in browser.find_element("id", "live-speed").text, timeout=30, message="it did not pause")
    assert buttons["resume"].is_enabled() and not buttons["pause"].is_enabled()

    # A projector opened now follows the same run, from its start, in large type.
    projector = base_url(empty_server).rstrip("/") + "/projector"
    main_window = browser.current_window_handle
    browser.switch_to.new_window("window")
    # A page opened while a run trains, with a model loaded (the first test's): that model answers, so no banner.
    browser.get(base_url(empty_server))
    wait_for(lambda: "test accuracy" in browser.find_element("id", "model-info").text,
             message="a page opened during a run did not show the loaded model")
    wait_for(lambda: " · step " in status_text(browser) or "paused" in browser.find_element("id", "live-speed").text,
             timeout=30, message="a page opened during a run did not follow it")
    assert not browser.find_element("id", "no-model").is_displayed()
    browser.get(projector)
    assert "view=projector" in browser.current_url
    wait_for(lambda: "paused" in browser.find_element("id", "live-speed").text, timeout=30,
             message="the projector did not catch up with the run")
    assert not browser.find_element("id", "pad").is_displayed()
    assert not browser.find_element("id", "live-start").is_displayed()
    assert int(browser.find_element("id", "live-loss").get_attribute("data-points")) >= 1
    save_screenshot(browser, tmp_path, "live-projector.png")
    browser.close()
    browser.switch_to.window(main_window)

    buttons["resume"].click()
    wait_for(lambda: "paused" not in browser.find_element("id", "live-speed").text, timeout=30,
             message="it did not resume")
    buttons["stop"].click()
    wait_for(lambda: "Stopped early; saved" in status_text(browser), timeout=180, message="stopping did not save the run")
    assert buttons["start"].is_enabled() and not buttons["stop"].is_enabled()
