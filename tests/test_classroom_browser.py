"""The page as a class meets it, in real headless Chromium: the teacher (the printed link) and a student (a second
browser, the link without the token), consent, review first, names shown as text, the label a student picks, and
the page on a phone, a laptop and a projector (screenshots in docs/img/)."""

import http.client
import json
import pathlib
import shutil
import time
import urllib.parse

import pytest
import test_web_browser
from PIL import Image
from test_web_browser import base_url, chromium, draw, save_screenshot, settled_answer, wait_for, with_query

browser = test_web_browser.browser  # The teacher's headless Chromium (module-scoped).

DOCS_IMG = pathlib.Path(__file__).resolve().parents[1] / "docs" / "img"
# A run folder and a class name that would run a script if the page ever put them in as markup.
XSS_RUN = "<img src=x onerror=window.pwned=1>"
XSS_CLASS = "<img src=x onerror=window.pwned=2>"
DRAW_PAGE_TITLE = "firstnet: draw a digit"
ONE = [[(0.52, 0.15), (0.47, 0.85)]]
SEVEN = [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]]


@pytest.fixture(scope="module")
def xss_run(trained_run, tmp_path_factory):
    """A copy of the trained run under a name with markup in it, with markup as the name of its class 0."""
    root = tmp_path_factory.mktemp("classroom") / "runs"
    run = root / XSS_RUN
    shutil.copytree(trained_run.run_dir, run)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["class_names"] = [XSS_CLASS] + [str(digit) for digit in range(1, 10)]
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.fixture(scope="module")
def classroom(xss_run):
    """`firstnet serve` on 127.0.0.1 (this computer only) with the oddly named run; yields (teacher's link,
    collection folder)."""
    folder = xss_run.parent.parent
    with test_web_browser.serving("--model", xss_run, "--root", xss_run.parent, "--collection", folder / "our_digits",
                                  cwd=folder) as (url, _):
        yield url, folder / "our_digits"


@pytest.fixture(scope="module")
def school(trained_run, tmp_path_factory):
    """`firstnet serve --host 127.0.0.2`: a server other devices reach (a loopback address stands in for the school's
    network), so it has a students' link and a QR code; one short run trained from the page fills the live figures."""
    folder = tmp_path_factory.mktemp("school")
    with test_web_browser.serving("--model", trained_run.run_dir, "--host", "127.0.0.2", "--root", folder / "runs",
                                  cwd=folder) as (url, said):
        students = [line.split()[-1] for line in said if line.startswith("students' link: ")]
        assert students == [base_url(url)], said
        train_briefly(url)
        yield url


def train_briefly(url):
    """Start a run of a few seconds with the teacher's token, as a script would, and wait until it is saved."""
    address = urllib.parse.urlsplit(url)
    headers = {"Authorization": "token " + urllib.parse.parse_qs(address.query)["token"][0],
               "Content-Type": "application/json"}

    def call(method, path, body=None):
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = connection.getresponse()
        answer = json.loads(response.read() or b"null")
        connection.close()
        return response.status, answer

    status, answer = call("POST", "/api/train", {"epochs": 2, "train_digits": 2000, "hidden_units": 64, "seed": 0})
    assert status == 202, answer
    wait_for(lambda: call("GET", "/api/train")[1]["state"] != "running", timeout=240, message="the run did not end")
    assert call("GET", "/api/train")[1]["state"] == "finished"


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A student's browser: a profile of its own, so none of the teacher's cookies."""
    driver = chromium(tmp_path_factory.mktemp("student-profile"))
    yield driver
    driver.quit()


def open_as(page, url, role):
    page.get(url)
    wait_for(lambda: role in page.find_element("tag name", "body").get_attribute("class"),
             message=f"the page never knew it was the {role}'s")
    wait_for(lambda: "test accuracy" in page.find_element("id", "model-info").text,
             message="the page never showed the model")


def shown(page, element_id):
    return page.find_element("id", element_id).is_displayed()


def message_of(page):
    return page.find_element("id", "collection-message").text


def pick(page, digit):
    page.find_element("css selector", f"#label-picker button[data-digit='{digit}']").click()


def chosen(page):
    return [button.text for button in page.find_elements("css selector", "#label-picker button.chosen")]


def mine(page):
    """The student's own pictures as shown: [(caption, state)]."""
    return page.execute_script("""return [...document.querySelectorAll('#mine li')].map((item) =>
        [item.querySelector('figcaption').textContent, item.querySelector('.state').textContent]);""")


def clear(page):
    page.find_element("id", "clear-button").click()
    wait_for(lambda: page.find_element("id", "digit").text == "?", message="Clear did not clear")


def test_a_student_sees_no_teachers_controls_adds_after_consent_and_takes_back(classroom, student):
    url, collection = classroom
    open_as(student, base_url(url), "student")
    # A student draws, adds and watches; training, fine-tuning, export, import and the class's pictures are the
    # teacher's.
    for teachers in ("knobs", "live-start", "live-stop", "live-link", "collection-score", "collection-finetune",
                     "collection-export", "collection-import", "collection-recent", "class-panel", "review-first"):
        assert not shown(student, teachers), teachers
    for everyones in ("pad", "label-picker", "collection-add", "mine-score", "live-loss", "live-status"):
        assert shown(student, everyones), everyones
    assert student.execute_script("return localStorage.getItem('firstnet-consent-given')") is None

    draw(student, ONE)
    settled_answer(student, "a student's 1")
    pick(student, 1)
    student.find_element("id", "collection-add").click()
    # Before the first picture: what is kept, in the page's own dialog.
    consent = student.find_element("id", "consent")
    wait_for(consent.is_displayed, message="no consent notice before the first add")
    assert "28x28" in consent.text and "Take back" in consent.text
    student.find_element("id", "consent-cancel").click()
    wait_for(lambda: "Not added" in message_of(student), message=message_of(student))
    assert not any(collection.glob("[0-9]/*.png"))
    student.find_element("id", "collection-add").click()
    wait_for(consent.is_displayed, message="no consent notice after Not now")
    student.find_element("id", "consent-add").click()
    wait_for(lambda: "Added as a 1" in message_of(student), message=message_of(student))
    wait_for(lambda: mine(student) == [["a 1", "in the collection"]], message=f"your pictures: {mine(student)}")
    assert len(list((collection / "1").glob("*.png"))) == 1

    # Agreed once: the next picture goes straight in.
    clear(student)
    draw(student, SEVEN)
    settled_answer(student, "a student's 7")
    pick(student, 7)
    student.find_element("id", "collection-add").click()
    wait_for(lambda: "Added as a 7" in message_of(student), message=message_of(student))
    assert not consent.is_displayed()
    wait_for(lambda: len(mine(student)) == 2, message=f"your pictures: {mine(student)}")

    # How the network reads the student's own digits.
    student.find_element("id", "mine-score").click()
    result = student.find_element("id", "mine-result")
    wait_for(lambda: "of your 2 digits" in result.text, message=result.text)
    assert len(student.find_elements("css selector", "#mine-read li")) == 2

    # Taking back the 1: gone from the list and from the folder.
    student.find_element("css selector", "#mine li:last-child button").click()
    wait_for(lambda: mine(student) == [["a 7", "in the collection"]], message=f"your pictures: {mine(student)}")
    wait_for(lambda: not any((collection / "1").glob("*.png")), message="the picture taken back is still kept")
    assert "Taken back" in message_of(student)
    # The student's page never asked for what only the teacher may have (each such request would be a 403).
    refused = [entry["message"] for entry in student.get_log("browser") if " 403 " in entry["message"]]
    assert not refused, refused


def test_review_first_holds_a_students_picture_until_the_teacher_accepts_it(classroom, browser, student):
    url, collection = classroom
    open_as(browser, url, "teacher")
    assert shown(browser, "class-panel") and shown(browser, "live-start") and shown(browser, "collection-export")
    # On this computer only: no students' link to show, and the page says how to get one.
    assert not shown(browser, "join") and shown(browser, "join-local")
    review = browser.find_element("id", "review-first")
    if not review.is_selected():
        review.click()
    wait_for(lambda: "Review first is on" in browser.find_element("id", "class-message").text)
    try:
        open_as(student, base_url(url), "student")
        draw(student, ONE)
        settled_answer(student, "a student's drawing")
        pick(student, 3)
        student.find_element("id", "collection-add").click()
        wait_for(lambda: "when the teacher has looked at it" in message_of(student), message=message_of(student))
        wait_for(lambda: ["a 3", "waiting for the teacher"] in mine(student), message=f"{mine(student)}")
        assert not any((collection / "3").glob("*.png"))

        # The teacher's grid shows it within a poll; Accept puts it in the collection and the counts.
        card = wait_for(lambda: browser.find_elements("css selector", "#review-grid .review-card"), timeout=15,
                        message="the review grid never showed the waiting picture")[0]
        assert card.find_element("tag name", "figcaption").text == "a 3"
        card.find_element("css selector", "button.accept").click()
        counts = browser.find_element("id", "collection-counts")
        wait_for(lambda: "3: 1" in counts.text, message=f"the teacher's counts: {counts.text!r}")
        wait_for(lambda: not browser.find_elements("css selector", "#review-grid .review-card"))
        assert len(list((collection / "3").glob("*.png"))) == 1
        wait_for(lambda: ["a 3", "in the collection"] in mine(student), timeout=15,
                 message=f"the student's list did not follow: {mine(student)}")
    finally:
        if review.is_selected():
            review.click()
        wait_for(lambda: "Review first is off" in browser.find_element("id", "class-message").text)


def test_names_with_markup_are_shown_as_text(classroom, browser, student):
    url, _ = classroom
    for page, link, role in ((browser, url, "teacher"), (student, base_url(url), "student")):
        open_as(page, link, role)
        info = page.find_element("id", "model-info")
        assert XSS_RUN in info.text
        assert not info.find_elements("tag name", "img")
        draw(page, ONE)
        settled_answer(page, "a 1 on a run with odd names")
        labels = page.execute_script("return [...document.querySelectorAll('#bars .label')].map((l) => l.textContent)")
        assert labels[0] == XSS_CLASS
        assert not page.find_elements("css selector", "#bars img, img[src='x']")
        assert page.execute_script("return window.pwned") is None
        clear(page)


def test_the_label_a_student_picks_stays_after_more_strokes(classroom, student):
    url, _ = classroom
    open_as(student, base_url(url), "student")
    draw(student, ONE)
    said, _ = settled_answer(student, "a 1")
    # The network's guess is offered until the student picks.
    wait_for(lambda: chosen(student) == [said], message=f"offered {chosen(student)}, the network said {said}")
    pick(student, 4)
    draw(student, [[(0.3, 0.5), (0.7, 0.5)]])
    time.sleep(0.3)
    settled_answer(student, "another stroke")
    assert chosen(student) == ["4"]
    assert "This is a 4" in student.find_element("id", "collection-add").text
    clear(student)
    assert chosen(student) == [] and not student.find_element("id", "collection-add").is_enabled()
    draw(student, ONE)
    said, _ = settled_answer(student, "a 1 after Clear")
    wait_for(lambda: chosen(student) == [said], message="after Clear the network's guess was not offered again")


def test_bad_link_values_are_said_and_not_used(classroom, browser):
    url, _ = classroom
    open_as(browser, with_query(url, "?hidden_units=-5&epochs=2&hide=optimiser&batch_sise=3"), "teacher")
    assert browser.find_element("name", "hidden_units").get_attribute("value") == ""
    assert browser.find_element("name", "epochs").get_attribute("value") == "2"
    note = browser.find_element("id", "knobs-note")
    assert note.is_displayed()
    assert "hidden_units=-5 (allowed: a whole number from 1 to 4096)" in note.text
    assert "hide=optimiser (no knob of that name" in note.text and "batch_sise (no such setting" in note.text
    # This server is on this computer only: the link can only be this page's own address.
    link = browser.find_element("id", "live-link").get_attribute("href")
    assert link.startswith(base_url(url)) and "epochs=2" in link and "hidden_units" not in link


def emulate(page, width, height, touch=False):
    """The page at another size: a phone (touch, no hover), a laptop or a projector."""
    page.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                         {"width": width, "height": height, "deviceScaleFactor": 2 if touch else 1, "mobile": touch})
    # With touch, the page's media queries see what a phone's do: no hover, a coarse pointer.
    page.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": touch})


def normal_size(page):
    page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    page.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})


def keep_picture(page, tmp_path, name):
    path = save_screenshot(page, tmp_path, name)
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, DOCS_IMG / name)


def test_phone_laptop_and_projector(school, browser, student, tmp_path, mnist):
    students_url = base_url(school)
    # A student's phone: nothing scrolls sideways, no keyboard hints, fingers-sized buttons.
    emulate(student, 390, 844, touch=True)
    try:
        open_as(student, students_url, "student")
        wait_for(lambda: student.find_elements("css selector", "#live-strip canvas"), message="no run replayed")
        picture = tmp_path / "four.png"
        Image.fromarray(255 - mnist.x_test[int((mnist.y_test == 4).argmax())]).resize((200, 200)).save(picture)
        student.find_element("id", "upload").send_keys(str(picture))
        settled_answer(student, "a photo on a phone")
        said = student.find_element("id", "message").text
        assert "press Clear" in said and "Esc" not in said, said
        assert not student.find_element("css selector", ".draw kbd").is_displayed()
        assert student.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        narrow = student.execute_script("""return [...document.querySelectorAll('button, .button, #live-link')]
            .filter((b) => b.getClientRects().length && getComputedStyle(b).visibility !== 'hidden')
            .filter((b) => b.getBoundingClientRect().height < 44 || b.getBoundingClientRect().width < 44)
            .map((b) => b.id || b.textContent)""")
        assert not narrow, f"touch targets under 44 px: {narrow}"
        live_right = student.execute_script("""return Math.max(...[...document.querySelectorAll(
            '#live, #live canvas, #live .table-box, #live-strip, #live-weights')].map((e) => e.getBoundingClientRect().right))""")
        assert live_right <= 390, f"the live section runs {live_right} px wide on a 390 px phone"
        keep_picture(student, tmp_path, "classroom-phone.png")
    finally:
        normal_size(student)

    # The teacher's laptop: the class panel shows the students' link and its QR code; links carry that address.
    emulate(browser, 1366, 768)
    try:
        open_as(browser, school, "teacher")
        join = browser.find_element("id", "join-link")
        wait_for(join.is_displayed, message="the students' link is not shown")
        assert join.text == students_url
        assert browser.execute_script("return document.getElementById('join-qr').naturalWidth") > 0
        assert browser.find_element("id", "live-link").get_attribute("href").startswith(students_url)
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        draw(browser, SEVEN)
        settled_answer(browser, "the teacher's 7")
        # Not a touch screen: the keyboard hint is there, and the message names the key.
        assert browser.find_element("css selector", ".draw kbd").is_displayed()
        assert "press Esc" in browser.find_element("id", "message").text
        keep_picture(browser, tmp_path, "classroom-laptop.png")

        # The projector: its own title, every figure above the fold of 1920x1080, and the students' link.
        emulate(browser, 1920, 1080)
        browser.get(students_url.rstrip("/") + "/projector")
        wait_for(lambda: browser.find_elements("css selector", "#live-confusion tr"), message="no run on the projector")
        wait_for(lambda: browser.find_element("id", "projector-join").is_displayed(), message="no QR on the projector")
        assert browser.title != DRAW_PAGE_TITLE and "watch it learn" in browser.title
        assert browser.find_element("id", "page-title").text == "firstnet: watch it learn"
        assert browser.find_element("id", "projector-link").text == students_url
        time.sleep(0.5)  # The last frame of the replayed run.
        boxes = browser.execute_script("""return Object.fromEntries(['live-loss', 'live-accuracy', 'live-weights',
            'live-strip', 'live-confusion', 'projector-qr'].map((id) => {
                const box = document.getElementById(id).getBoundingClientRect();
                return [id, [box.top, box.bottom, box.width, box.height]]; }))""")
        for name, (top, bottom, width, height) in boxes.items():
            assert width > 100 and height > 100 and 0 <= top and bottom <= 1080, (name, boxes)
        assert browser.execute_script("return document.documentElement.scrollHeight <= window.innerHeight + 1")
        keep_picture(browser, tmp_path, "classroom-projector.png")
    finally:
        normal_size(browser)
