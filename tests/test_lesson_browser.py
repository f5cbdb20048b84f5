"""What deep learning is not, on the page in headless Chromium: why this answer, "not a digit", fool it, and a
confusion cell opened to its pictures."""

import os

import pytest

import test_web_browser
from test_lesson_api import mnist_run  # noqa: F401 - the dense run with its rule, trained once for this module.
from test_web_browser import draw, open_page, save_screenshot, settled_answer, wait_for, with_query

pytestmark = pytest.mark.browser

browser = test_web_browser.browser
# A run of a few seconds from the page, as the live panel's own browser test trains.
LINK = "?epochs=1&train_digits=3000&batch_size=32&hidden_units=32&seed=0"


@pytest.fixture(scope="module")
def served(mnist_run, mnist_path, tmp_path_factory):  # noqa: F811 - the fixture imported above.
    """`firstnet serve` of the dense run (its rule stored), with the real MNIST to train more from the page."""
    folder = tmp_path_factory.mktemp("serve-lesson")
    environment = dict(os.environ)
    environment.pop("FIRSTNET_DATA", None)
    with test_web_browser.serving("--model", mnist_run, "--root", folder / "runs", "--data", mnist_path, cwd=folder,
                                  env=environment) as (url, _):
        yield url


def coloured_pixels(page, canvas_id):
    """How many pixels of a canvas are clearly red (towards) and clearly blue (against)."""
    return page.execute_script(f"""
        const canvas = document.getElementById('{canvas_id}');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let red = 0, blue = 0;
        for (let i = 0; i < data.length; i += 4) {{
            if (data[i] > 120 && data[i] > data[i + 2] + 60) red += 1;
            if (data[i + 2] > 120 && data[i + 2] > data[i] + 60) blue += 1;
        }}
        return [red, blue];""")


def test_a_drawn_digit_says_why_and_a_square_is_not_a_digit(served, browser, tmp_path):
    open_page(browser, served)
    draw(browser, [[(0.52, 0.15), (0.47, 0.85)]])
    digit, _ = settled_answer(browser, "drawing a 1")
    assert digit == "1"
    wait_for(lambda: browser.find_element("id", "why").get_attribute("data-drawn") == "true",
             message="the why-canvas was not drawn")
    red, _ = coloured_pixels(browser, "why")
    assert red >= 10, f"only {red} red pixels in the explanation"
    assert "integrated gradients" in browser.find_element("id", "why-method").text
    assert not browser.find_element("id", "not-a-digit").is_displayed()
    save_screenshot(browser, tmp_path, "lesson-why.png")

    browser.find_element("id", "clear-button").click()
    wait_for(lambda: browser.find_element("id", "why").get_attribute("data-drawn") is None, timeout=10,
             message="clearing the pad left the explanation")
    square = [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8), (0.2, 0.2)]
    draw(browser, [square, [(0.35, 0.35), (0.65, 0.65)], [(0.65, 0.35), (0.35, 0.65)]])
    settled_answer(browser, "drawing a crossed square")
    words = browser.find_element("id", "not-a-digit")
    wait_for(words.is_displayed, timeout=10, message="a crossed square was answered as a digit")
    assert "does not look like the digits I learned" in words.text
    assert "if it were one:" in browser.find_element("id", "if-it-were").text
    assert browser.find_element("id", "bars-note").is_displayed()
    assert "hypothetical" in browser.find_element("id", "bars").get_attribute("class")
    save_screenshot(browser, tmp_path, "lesson-not-a-digit.png")


def test_fool_it_shows_three_pictures_and_what_the_network_read(served, browser, tmp_path):
    open_page(browser, served)
    wait_for(browser.find_element("id", "fool").is_displayed, message="no Fool it panel for a digit run")
    # The first test digit, a 7 the network reads right: the pick is random on the page.
    browser.execute_script("Math.random = () => 0;")
    browser.find_element("id", "fool-pick").click()
    assert browser.find_element("id", "fool-index").text == "test digit 0"
    browser.find_element("css selector", "#fool-targets button[data-digit='3']").click()
    browser.find_element("id", "fool-button").click()
    pictures = browser.find_element("id", "fool-pictures")
    wait_for(pictures.is_displayed, timeout=120, message="fooling showed no pictures: "
             + browser.find_element("id", "fool-message").text)
    assert browser.find_element("id", "fool-original-caption").text.startswith("a 7, read as 7")
    assert browser.find_element("id", "fool-changed-caption").text.startswith("changed, read as 3")
    assert "magnified" in browser.find_element("id", "fool-difference-caption").text
    assert "of 255 levels" in browser.find_element("id", "fool-message").text
    assert browser.find_element("id", "fool-person").text == "To a person it is still a 7."
    for canvas in ("fool-original", "fool-changed", "fool-difference"):
        assert browser.execute_script(f"""
            const data = document.getElementById('{canvas}').getContext('2d').getImageData(0, 0, 28, 28).data;
            let most = 0; for (let i = 0; i < data.length; i += 4) most = Math.max(most, data[i], data[i + 2]);
            return most;""") > 100, f"{canvas} is empty"
    browser.execute_script("document.getElementById('fool').scrollIntoView()")
    save_screenshot(browser, tmp_path, "lesson-fool.png")


def test_a_confusion_cell_opens_to_as_many_pictures_as_it_counts(served, browser, tmp_path):
    browser.get(with_query(served, LINK))
    wait_for(lambda: "teacher" in browser.find_element("tag name", "body").get_attribute("class"))
    browser.find_element("id", "live-start").click()
    wait_for(lambda: "saved" in browser.find_element("id", "live-status").text, timeout=240,
             message="the run did not finish on the page")
    # The final matrix: an off-diagonal cell (a mistake) when there is one, else the largest.
    buttons = browser.find_elements("css selector", "#live-confusion button:enabled")
    mistakes = [button for button in buttons if button.get_attribute("data-true") != button.get_attribute("data-predicted")]
    chosen = max(mistakes or buttons, key=lambda button: int(button.text))
    count = int(chosen.text)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", chosen)
    chosen.click()
    gallery = browser.find_element("id", "live-cell-pictures")
    wait_for(lambda: gallery.get_attribute("data-count") == str(min(count, 100)), timeout=30,
             message=f"the cell of {count} showed {gallery.get_attribute('data-count')} pictures")
    assert len(gallery.find_elements("tag name", "canvas")) == min(count, 100)
    assert browser.find_element("id", "live-cell-title").text.startswith(f"{count} ")
    save_screenshot(browser, tmp_path, "lesson-confusion-cell.png")
