"""The page's part of "what deep learning is not" (#26) through its API: why this answer, not a digit, fool it, and a
confusion cell's pictures."""

import dataclasses
import io
import time

import numpy as np
import pytest
import web_clients
from PIL import Image

from firstnet import abstain, nondigits, train
from firstnet.web import app as web_app, cells, rules


def png_bytes(picture):
    buffer = io.BytesIO()
    (picture if isinstance(picture, Image.Image) else Image.fromarray(np.asarray(picture, dtype=np.uint8))).save(buffer, "PNG")
    return buffer.getvalue()


def drawn(digit_28x28, size=280):
    """A test digit as the page's pad holds it: large, white ink on black."""
    return png_bytes(Image.fromarray(digit_28x28).resize((size, size), Image.NEAREST))


def predict(client, picture):
    response = client.post("/api/predict", files={"file": ("drawing.png", picture, "image/png")})
    assert response.status_code == 200, response.text
    return response.json()


def with_rule(run_dir, mnist):
    """The run's "not a digit" rule fitted on a few non-digits of each kind and stored, as serving it would store it
    after a minute's learning."""
    from firstnet import model as firstnet_model

    model = firstnet_model.load_model(run_dir)
    abstain.save_rule(run_dir, abstain.fit_rule(model, mnist, per_kind=40))
    return run_dir


@pytest.fixture(scope="module")
def mnist_run(mnist, tmp_path_factory):
    """The dense network, one epoch on 20,000 digits, with its rule stored: about 95% on the test digits."""
    small = dataclasses.replace(mnist, x_train=mnist.x_train[:20000], y_train=mnist.y_train[:20000])
    config = train.TrainConfig(epochs=1, hidden_units=256, seed=0, verbose=0,
                               run_dir=str(tmp_path_factory.mktemp("runs") / "dense"))
    return with_rule(train.train(config, data=small).run_dir, mnist)


@pytest.fixture(scope="module")
def convnet_run(mnist, tmp_path_factory):
    """The convnet, one epoch on 6,000 digits."""
    small = dataclasses.replace(mnist, x_train=mnist.x_train[:6000], y_train=mnist.y_train[:6000])
    config = train.TrainConfig(**{**train.CONVNET, "epochs": 1}, seed=0, verbose=0,
                               run_dir=str(tmp_path_factory.mktemp("runs") / "convnet"))
    return train.train(config, data=small).run_dir


@pytest.fixture(scope="module")
def dense(mnist_run):
    with web_clients.student(web_app.create_app(mnist_run)) as client:
        yield client


def test_the_answer_says_why_and_the_shares_add_up_to_the_score_change(dense, mnist):
    assert dense.get("/api/model").json()["not_a_digit_rule"] == "ready"
    for index in range(3):
        answer = predict(dense, drawn(mnist.x_test[index]))
        explanation = answer["explanation"]
        assert explanation["digit"] == answer["digit"] == mnist.y_test[index]
        attributions = np.asarray(explanation["attributions"])
        assert attributions.shape == (28, 28) and (attributions > 0).any()
        change = explanation["score"] - explanation["baseline_score"]
        assert abs(attributions.sum() - change) <= 0.02 * abs(change) + 0.02, explanation["gap"]
        assert abs(explanation["gap"]) <= 0.02 * abs(change) + 0.02
        assert "integrated gradients" in explanation["method"]
        # Black pixels have no share: the explanation is about the ink the network saw.
        assert not attributions[np.asarray(answer["input"]) == 0].any()


def test_real_digits_are_answered_and_drawings_that_are_not_digits_are_not(dense, mnist):
    answered = [predict(dense, drawn(mnist.x_test[index])) for index in range(20)]
    assert sum(answer["not_a_digit"] is False for answer in answered) >= 19
    for answer in answered:
        assert 0 < answer["calibrated_probability"] <= 1 and answer["probability"] == max(answer["probabilities"])
        assert isinstance(answer["unlike_digits"], float)
    rng = np.random.default_rng(3)
    shapes = [predict(dense, png_bytes(nondigits.draw_shape(rng, shape))) for shape in ("square", "smiley", "star")]
    assert sum(answer["not_a_digit"] for answer in shapes) >= 2, [answer["unlike_digits"] for answer in shapes]
    # Abstaining keeps the digit it would have chosen and its probability beside it.
    assert all(answer["digit"] in range(10) and answer["probability"] > 0 for answer in shapes)


def test_fool_it_changes_a_test_digit_a_little_until_it_is_read_as_the_target(dense, mnist):
    response = dense.post("/api/fool", json={"index": 0, "target": 3})
    assert response.status_code == 200, response.text
    fooled = response.json()
    assert fooled["label"] == fooled["read"] == 7 and fooled["target"] == 3 and fooled["fooled_it"]
    original, changed = np.asarray(fooled["original"]), np.asarray(fooled["fooled"])
    assert original.shape == changed.shape == (28, 28) and (original == mnist.x_test[0]).all()
    assert fooled["fooled_read"] == 3 and fooled["probability"] > max(np.delete(fooled["probabilities"], 3))
    assert np.abs(changed - original).max() == fooled["linf"] <= fooled["bound"] <= 64
    assert (np.asarray(fooled["difference"]) == changed - original).all() and fooled["l2"] > 0
    # It reads the same picture as the network that answers drawings does.
    assert predict(dense, drawn(changed.astype(np.uint8)))["digit"] in range(10)


@pytest.mark.parametrize("body, status, words", [
    ({"index": 0, "target": 7}, 422, "is a 7 already: choose another target"),
    ({"index": 10000, "target": 3}, 422, "use 0 to 9999"),
    ({"index": -1, "target": 3}, 422, "greater than or equal to 0"),
    ({"index": 0, "target": 10}, 422, "less than or equal to 9"),
    ({"index": 0, "target": 3, "min_probability": 1}, 422, "less than 1"),
])
def test_fooling_refuses_what_cannot_be_done_saying_why(dense, body, status, words):
    response = dense.post("/api/fool", json=body)
    assert response.status_code == status and words in str(response.json()["detail"]), response.text


def test_fooling_needs_the_page_own_origin_like_every_post(mnist_run):
    with web_clients.student(web_app.create_app(mnist_run)) as client:
        refused = client.post("/api/fool", json={"index": 0, "target": 3}, headers={"Origin": "http://elsewhere.example"})
    assert refused.status_code == 403


def test_the_convnet_explains_and_is_fooled_too(convnet_run, mnist, monkeypatch):
    import threading

    finished = threading.Event()

    def unfinished_fit(model, data):
        finished.wait(60)
        raise RuntimeError("this test ends before the rule is learnt")

    monkeypatch.setattr(abstain, "fit_rule", unfinished_fit)
    with web_clients.student(web_app.create_app(convnet_run)) as client:
        answer = predict(client, drawn(mnist.x_test[1]))
        explanation = answer["explanation"]
        change = explanation["score"] - explanation["baseline_score"]
        assert np.asarray(explanation["attributions"]).shape == (28, 28)
        assert abs(explanation["gap"]) <= 0.05 * abs(change) + 0.02
        # No rule stored with this run: it is learnt in the background, and the answers say nothing meanwhile.
        assert client.get("/api/model").json()["not_a_digit_rule"] == rules.LEARNING
        assert answer["not_a_digit"] is None and answer["calibrated_probability"] is None
        fooled = client.post("/api/fool", json={"index": 1, "target": 5})
        assert fooled.status_code == 200, fooled.text
        assert fooled.json()["fooled_it"] and fooled.json()["fooled_read"] == 5
    finished.set()


def test_while_the_rule_is_learnt_answers_say_null_then_it_is_stored(mnist_run, mnist, tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(mnist_run, copy)
    (copy / abstain.RULE_FILE).unlink()
    import threading

    release = threading.Event()
    stored = abstain.load_rule(mnist_run)

    def slow_fit(model, data):
        release.wait(60)
        return stored

    monkeypatch.setattr(abstain, "fit_rule", slow_fit)
    with web_clients.student(web_app.create_app(copy)) as client:
        assert client.get("/api/model").json()["not_a_digit_rule"] == "learning"
        assert predict(client, drawn(mnist.x_test[0]))["not_a_digit"] is None
        release.set()
        deadline = time.monotonic() + 30
        while client.get("/api/model").json()["not_a_digit_rule"] != "ready":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert predict(client, drawn(mnist.x_test[0]))["not_a_digit"] is False
    assert (copy / abstain.RULE_FILE).is_file()


def test_a_confusion_cell_gives_exactly_the_pictures_it_counts():
    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=50)
    probabilities = rng.dirichlet(np.ones(10), size=50).astype(np.float32)
    kept = cells.ConfusionPictures()
    with pytest.raises(cells.NoEvaluation, match="no confusion matrix yet"):
        kept.cell(0, 0, 10)
    kept.take({"kind": cells.DIGITS_EVENT, "on": "test digits", "pictures": cells.packed(pictures, np.uint8),
               "labels": cells.packed(labels, np.int16)})
    kept.take({"kind": cells.SCORES_EVENT, "after_epochs": 1,
               "probabilities": cells.packed(probabilities, np.float32)})
    matrix = np.zeros((10, 10), dtype=int)
    np.add.at(matrix, (labels, probabilities.argmax(axis=1)), 1)
    for true in range(10):
        for said in range(10):
            cell = kept.cell(true, said, 100)
            assert cell["count"] == len(cell["pictures"]) == matrix[true, said]
            for item in cell["pictures"]:
                assert item["picture"] == pictures[item["index"]].tolist() and labels[item["index"]] == true
    assert kept.cell(int(labels[0]), int(probabilities[0].argmax()), 1)["shown"] == 1


def test_each_cell_of_the_live_matrix_opens_to_the_pictures_it_counts(tmp_path, mnist_path, monkeypatch):
    import http.client
    import json

    from test_live import Stream, call, serving

    def no_fit(model, data):
        raise RuntimeError("this test leaves the rule unlearnt")

    # The saved run is loaded to answer drawings; its rule is not this test's concern.
    monkeypatch.setattr(abstain, "fit_rule", no_fit)
    with serving(tmp_path / "runs", mnist_path) as server:
        def cell(query):
            connection = http.client.HTTPConnection(server[0], server[1], timeout=60)
            connection.request("GET", "/api/train/cell?" + query)
            response = connection.getresponse()
            answer = json.loads(response.read())
            connection.close()
            return response.status, answer

        status, answer = cell("true=3&predicted=5")
        assert status == 404 and "no confusion matrix yet" in answer["detail"]
        short = {"epochs": 1, "train_digits": 1000, "batch_size": 32, "hidden_units": 16, "seed": 0}
        assert call(server, "POST", "/api/train", short)[0] == 202
        stream = Stream(server, "?until_end=true")
        events = list(stream.events())
        stream.close()
        assert events[-1]["kind"] == "saved", events[-1]
        assert not [event for event in events if event["kind"] in cells.PRIVATE]  # Kept by the server, not streamed.
        matrix = np.asarray([event for event in events if event["kind"] == "evaluation"][-1]["confusion"])
        for true in range(10):
            for said in range(10):
                status, answer = cell(f"true={true}&predicted={said}&limit=100")
                assert status == 200 and answer["count"] == matrix[true, said], (true, said, answer.get("count"))
                assert len(answer["pictures"]) == min(100, matrix[true, said])
                for item in answer["pictures"]:
                    assert np.asarray(item["picture"]).shape == (28, 28) and item["true"] == true
                    assert np.argmax(item["probabilities"]) == said and item["probability"] >= item["true_probability"]
        assert cell("true=10&predicted=0")[0] == 422 and cell("true=0&predicted=0&limit=101")[0] == 422
