"""The page's "Our handwriting" panel in headless Chromium: draw, label, add to the collection, score ours."""

import pytest

import test_web_browser
from test_web_browser import draw, open_page, settled_answer, wait_for

pytestmark = pytest.mark.browser

browser = test_web_browser.browser  # The headless Chromium fixture, shared with the page's own browser tests.


@pytest.fixture(scope="module")
def served(trained_run, tmp_path_factory):
    """`firstnet serve --collection DIR` on a free port; yields (url, collection folder)."""
    folder = tmp_path_factory.mktemp("serve")
    collection = folder / "our_digits"
    with test_web_browser.serving("--model", trained_run.run_dir, "--collection", collection, cwd=folder) as (url, said):
        assert any(f"class collection: {collection}" in seen for seen in said), said
        yield url, collection


def test_a_drawing_labelled_on_the_page_joins_the_collection_and_is_scored(served, browser):
    url, collection = served
    open_page(browser, url)
    draw(browser, [[(0.5, 0.15), (0.5, 0.85)]])
    said, _ = settled_answer(browser, "drawing a 1")
    picker = browser.find_element("id", "label-picker")
    # The network's answer is offered as the label; the learner chooses another.
    wait_for(lambda: picker.find_elements("css selector", "button.chosen"), message="no label was offered")
    assert picker.find_element("css selector", "button.chosen").text == said
    picker.find_element("css selector", "button[data-digit='7']").click()
    add = browser.find_element("id", "collection-add")
    assert "This is a 7" in add.text
    add.click()
    message = browser.find_element("id", "collection-message")
    wait_for(lambda: "Added as a 7" in message.text, message=f"not added: {message.text!r}")
    counts = browser.find_element("id", "collection-counts")
    wait_for(lambda: "7: 1" in counts.text and "1 in all" in counts.text, message=f"counts: {counts.text!r}")
    saved = list((collection / "7").glob("*.png"))
    assert len(saved) == 1 and len(list((collection / ".originals").iterdir())) == 1
    browser.find_element("id", "collection-score").click()
    result = browser.find_element("id", "collection-result")
    wait_for(lambda: "on our digits" in result.text, message=f"no score: {result.text!r}")
    assert result.text.startswith("On MNIST 9") and "Only a few pictures" in result.text
    assert browser.find_elements("css selector", "#collection-per-digit td")
    assert browser.find_element("id", "collection-finetune").get_attribute("hidden") is not None
