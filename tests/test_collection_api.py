"""The class collection's API and library: add, list, delete, export, import twice, bad input, limits, a class at once."""

import concurrent.futures
import io
import pathlib
import zipfile

import numpy as np
import pytest
import web_clients
from PIL import Image

from firstnet import data as mnist_data, finetune, images, predict
from firstnet.data import collection
from firstnet.data import folders
from firstnet.web import app as web_app


def png_bytes(pixels):
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def as_drawing(digit, size=200):
    """An MNIST digit as the page's canvas sends it: large, dark ink on white paper."""
    return png_bytes(np.asarray(Image.fromarray(255 - digit).resize((size, size), Image.NEAREST)))


def add(client, picture, label, name="drawing.png"):
    return client.post("/api/collection", files={"file": (name, picture, "image/png")}, data={"label": label})


def import_zip(client, **request):
    """POST a zip to the import job and wait for its report; a refusal (4xx) is returned as the response itself."""
    import time

    started = client.post("/api/collection/import", **request)
    if started.status_code != 202:
        return started
    deadline = time.monotonic() + 120
    while (status := client.get("/api/collection/import").json())["state"] == "running":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert status["state"] == "finished", status
    return status["report"]


def files_under(root):
    return sorted(str(path.relative_to(root)) for path in pathlib.Path(root).rglob("*") if path.is_file())


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "class"


@pytest.fixture
def client(trained_run, folder):
    with web_clients.teacher(web_app.create_app(trained_run.run_dir, collection=folder)) as client:
        yield client


def test_add_keeps_the_prepared_digit_and_the_original_and_the_folder_reader_counts_it_once(client, folder, mnist):
    first, second = as_drawing(mnist.x_test[0]), as_drawing(mnist.x_test[1])
    answer = add(client, first, str(mnist.y_test[0]))
    assert answer.status_code == 201, answer.text
    item = answer.json()["item"]
    assert item["label"] == str(mnist.y_test[0]) and len(item["id"]) == 16
    saved = folder / item["label"] / f"{item['id']}.png"
    prepared = images.prepare_image(images.open_image(first))
    # The picture kept is the page's own 28x28 preparation, and its id the hash of those pixels.
    assert np.array_equal(np.asarray(Image.open(saved)), prepared)
    assert item["id"] == collection.picture_id(prepared)
    # The original is kept as the drawing's pixels, re-encoded (nothing else of the file is kept), within 256x256.
    kept = Image.open(folder / collection.ORIGINALS / f"{item['id']}.png")
    assert max(kept.size) <= collection.ORIGINAL_SIDE
    assert np.array_equal(np.asarray(kept.convert("L")), np.asarray(Image.open(io.BytesIO(first)).convert("L")))
    assert add(client, second, str(mnist.y_test[1])).status_code == 201
    # Every firstnet reader sees two pictures, not four: the originals are in a folder they skip.
    read = folders.load_class_folders(folder, for_scoring=True, announce=lambda line: None)
    assert len(read.x_test) == 2
    dataset = mnist_data.load_path(folder, for_scoring=True)
    assert sorted(dataset.y_test.tolist()) == sorted([int(mnist.y_test[0]), int(mnist.y_test[1])])
    assert not [name for name in files_under(folder) if ".tmp" in name]


def test_the_same_picture_twice_is_kept_once_and_another_label_is_refused(client, folder, mnist):
    picture = as_drawing(mnist.x_test[3])
    assert add(client, picture, "0").status_code == 201
    again = add(client, picture, "0")
    assert again.status_code == 200 and again.json()["added"] is False and again.json()["total"] == 1
    other = add(client, picture, "8")
    assert other.status_code == 409 and "already in the collection as a 0" in other.json()["detail"]
    assert client.get("/api/collection").json()["total"] == 1


@pytest.mark.parametrize("label", ["10", "a", "", "-1", "3x", "٣"])
def test_bad_labels_get_422_and_nothing_is_written(client, folder, mnist, label):
    answer = add(client, as_drawing(mnist.x_test[0]), label)
    assert answer.status_code == 422 and "0 to 9" in answer.json()["detail"]
    assert not files_under(folder)


def test_bad_images_get_422_oversized_413_and_nothing_is_written(client, folder):
    not_an_image = add(client, b"this is not a picture", "3", name="notes.txt")
    assert not_an_image.status_code == 422 and "not a picture firstnet reads" in not_an_image.json()["detail"]
    blank = add(client, png_bytes(np.full((64, 64), 255)), "3")
    assert blank.status_code == 422 and "blank" in blank.json()["detail"]
    huge = add(client, b"\x89PNG" + bytes(3 * 1024 * 1024), "3")
    assert huge.status_code == 413
    no_label = client.post("/api/collection", files={"file": ("d.png", png_bytes(np.eye(28) * 255), "image/png")})
    assert no_label.status_code == 422 and "label" in no_label.json()["detail"]
    assert not files_under(folder)


def test_list_counts_each_digit_and_shows_the_newest_first(client, mnist):
    for index in range(6):
        assert add(client, as_drawing(mnist.x_test[index]), str(mnist.y_test[index])).status_code == 201
    listed = client.get("/api/collection").json()
    expected = {str(digit): int((mnist.y_test[:6] == digit).sum()) for digit in range(10)}
    assert listed["counts"] == expected and listed["total"] == 6
    assert listed["recent"][0]["label"] == str(mnist.y_test[5])
    assert listed["recent"][0]["picture"].startswith("data:image/png;base64,")
    assert listed["finetune"]["state"] == "idle"


def test_delete_removes_the_picture_and_its_original(client, folder, mnist):
    item = add(client, as_drawing(mnist.x_test[0]), "7").json()["item"]
    assert client.delete(f"/api/collection/{item['id']}").status_code == 204
    assert not files_under(folder / "7") and not list((folder / collection.ORIGINALS).iterdir())
    assert client.delete(f"/api/collection/{item['id']}").status_code == 404
    assert client.delete("/api/collection/..%2F..%2Fetc").status_code == 404


def test_export_then_import_twice_adds_each_picture_once(client, folder, trained_run, tmp_path, mnist):
    for index in range(5):
        add(client, as_drawing(mnist.x_test[index]), str(mnist.y_test[index]))
    exported = client.get("/api/collection/export")
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(exported.content)).namelist()
    assert len([name for name in names if name.startswith(collection.ORIGINALS)]) == 5
    other = tmp_path / "other"
    with web_clients.teacher(web_app.create_app(trained_run.run_dir, collection=other)) as second:
        first = import_zip(second, files={"file": ("c.zip", exported.content, "application/zip")})
        assert first["added"] == 5 and first["already"] == 0
        again = import_zip(second, content=exported.content, headers={"content-type": "application/zip"})
        assert again["added"] == 0 and again["already"] == 5
        assert second.get("/api/collection").json()["total"] == 5
    # The imported collection holds the same pictures, originals included, under the same ids; who added which
    # (a browser's random id) stays on the server it was added on and is never exported.
    assert files_under(other) == [name for name in files_under(folder) if not name.startswith(".owners/")]
    assert not [name for name in names if "owners" in name]


def zip_of(entries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_import_is_guarded_against_traversal_bombs_and_junk(client, folder, tmp_path, mnist, monkeypatch):
    digit = png_bytes(mnist.x_test[0])
    bomb = bytes(30 * 1024 * 1024)  # 30 MB of zeros, a few KB compressed.
    hostile = zip_of({"../../evil/3/escape.png": digit, "/abs/3/root.png": png_bytes(mnist.x_test[1]),
                      "5/bomb.png": bomb, "4/readme.txt": b"hello", "7/broken.png": b"not a png"})
    report = import_zip(client, content=hostile, headers={"content-type": "application/zip"})
    assert report["added"] == 2 and report["skipped"] == 3
    # Entry names are only read as a label: both pictures are filed under their digit by id, nothing elsewhere.
    assert sorted(pathlib.PurePath(name).parts[0] for name in files_under(folder) if not name.startswith(".")) == ["3", "3"]
    assert not list(tmp_path.rglob("escape.png")) and not list(tmp_path.rglob("root.png"))
    not_zip = client.post("/api/collection/import", content=b"PK nope", headers={"content-type": "application/zip"})
    assert not_zip.status_code == 422 and "not a zip" in not_zip.json()["detail"]
    monkeypatch.setattr(collection, "MAX_IMPORT_ENTRIES", 3)
    many = client.post("/api/collection/import", content=zip_of({f"1/{n}.png": digit for n in range(4)}),
                       headers={"content-type": "application/zip"})
    assert many.status_code == 422 and "entries" in many.json()["detail"]
    monkeypatch.setattr(collection, "MAX_IMPORT_UNPACKED", 1000)
    claimed = client.post("/api/collection/import", content=zip_of({"1/a.png": digit * 10}),
                          headers={"content-type": "application/zip"})
    assert claimed.status_code == 422 and "unpack" in claimed.json()["detail"]


def test_a_full_collection_says_so_with_409(trained_run, folder, mnist, monkeypatch):
    monkeypatch.setattr(collection, "MAX_ITEMS", 2)
    with web_clients.teacher(web_app.create_app(trained_run.run_dir, collection=folder)) as client:
        assert add(client, as_drawing(mnist.x_test[0]), "7").status_code == 201
        assert add(client, as_drawing(mnist.x_test[1]), "2").status_code == 201
        full = add(client, as_drawing(mnist.x_test[2]), "1")
        assert full.status_code == 409 and "full: 2 pictures" in full.json()["detail"]
        assert client.get("/api/collection").json()["total"] == 2


def test_a_class_adding_at_once_loses_nothing(client, folder, mnist):
    pictures = [(as_drawing(mnist.x_test[index], size=120), str(mnist.y_test[index])) for index in range(40)]

    def add_many(share):
        return [add(client, picture, label).status_code for picture, label in share]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = [code for result in pool.map(add_many, [pictures[start::8] for start in range(8)]) for code in result]
    assert codes == [201] * 40
    listed = client.get("/api/collection").json()
    assert listed["total"] == 40
    assert listed["counts"] == {str(digit): int((mnist.y_test[:40] == digit).sum()) for digit in range(10)}
    images, labels, _ = collection.read_pictures(folder)
    assert len(images) == 40 and not [name for name in files_under(folder) if ".tmp" in name]


def test_score_compares_our_digits_with_mnist(client, trained_run, mnist):
    shifted, labels = collection.shifted_digits(mnist.x_test, mnist.y_test, count=60, seed=3)
    collection.write_digits(client.get("/api/collection").json()["folder"], shifted, labels)
    report = client.get("/api/collection/score").json()
    assert report["mnist_test"] == pytest.approx(trained_run.metrics["test_accuracy"])
    probabilities = predict.predict_digits(trained_run.model, shifted)
    assert report["ours"] == pytest.approx(float((probabilities.argmax(axis=1) == labels).mean()))
    assert sum(entry["total"] for entry in report["per_digit"]) == 60
    assert all(entry["low"] <= (entry["accuracy"] or 0) <= entry["high"] for entry in report["per_digit"] if entry["total"])
    assert report["worst"] and all(entry["picture"].startswith("data:image/png") and entry["true"] != entry["predicted"]
                                   for entry in report["worst"])


def test_finetune_waits_for_a_big_enough_collection(client, mnist):
    add(client, as_drawing(mnist.x_test[0]), "7")
    answer = client.post("/api/collection/finetune")
    assert answer.status_code == 409 and "needs 50" in answer.json()["detail"]


def test_openapi_lists_the_collection_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/collection", "/api/collection/{item_id}", "/api/collection/export", "/api/collection/import",
                 "/api/collection/score", "/api/collection/finetune"):
        assert path in paths, path
    assert "multipart/form-data" in paths["/api/collection"]["post"]["requestBody"]["content"]


def test_serving_without_a_collection_creates_no_folder(trained_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with web_clients.teacher(web_app.create_app(trained_run.run_dir, runs_root=str(tmp_path / "runs"))) as client:
        assert client.get("/api/collection").json()["total"] == 0
    assert not (tmp_path / "collection").exists()


def test_finetune_from_the_page_makes_a_new_run_and_loads_it(trained_run, tmp_path, mnist):
    import time

    folder = tmp_path / "class"
    shifted, labels = collection.shifted_digits(mnist.x_train, mnist.y_train, count=120, seed=1)
    collection.write_digits(folder, shifted, labels)
    runs_root = tmp_path / "runs"
    app = web_app.create_app(trained_run.run_dir, runs_root=str(runs_root), collection=folder)
    with web_clients.teacher(app) as client:
        started = client.post("/api/collection/finetune")
        assert started.status_code == 202, started.text
        assert client.post("/api/collection/finetune").status_code == 409
        deadline = time.monotonic() + 240
        while (status := client.get("/api/collection").json()["finetune"])["state"] == "running":
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        assert status["state"] == "finished", status
        # Progress came from the loop's own events: the last epoch to begin was the last of the recipe.
        assert status["epoch"] == status["epochs"] == finetune.FINETUNE_EPOCHS
        assert status["result"]["from"] == str(trained_run.run_dir.resolve())
        assert status["result"]["held_out"] == len(collection.held_out_split(labels)[1])
        # The page now talks to the fine-tuned run, a new folder under the runs.
        assert client.get("/api/model").json()["run"] == status["run"]
        assert (runs_root.parent / status["run"]).parent == runs_root and status["run"] in status["message"]


def test_import_takes_photos_filed_by_digit_and_keeps_them_as_originals(client, folder, mnist):
    buffer = io.BytesIO()
    Image.fromarray(255 - mnist.x_test[0]).resize((120, 120)).convert("RGB").save(buffer, "JPEG", quality=95)
    photo = buffer.getvalue()
    report = import_zip(client, content=zip_of({"photos/7/from_the_phone.jpg": photo}),
                        headers={"content-type": "application/zip"})
    assert report["added"] == 1, report
    (saved,) = (folder / "7").glob("*.png")
    assert np.array_equal(np.asarray(Image.open(saved)), images.prepare_image(images.open_image(photo)))
    # The photo is kept as its pixels, re-encoded as PNG: the same picture, none of the file's other bytes.
    kept = Image.open(folder / collection.ORIGINALS / f"{saved.stem}.png")
    assert kept.size == (120, 120) and np.array_equal(np.asarray(kept), np.asarray(Image.open(io.BytesIO(photo))))


def test_a_damaged_zip_entry_is_skipped_with_a_note(client, folder, mnist):
    good, bad = png_bytes(mnist.x_test[0]), png_bytes(mnist.x_test[1])
    archive = bytearray(zip_of({"3/good.png": good, "4/bad.png": bad}))
    # Flip bytes inside the second entry's compressed data: its checksum no longer matches.
    start = archive.index(b"4/bad.png") + len("4/bad.png") + 10
    archive[start:start + 20] = bytes(20)
    report = import_zip(client, content=bytes(archive), headers={"content-type": "application/zip"})
    assert report["added"] == 1 and report["skipped"] == 1
    assert "4/bad.png" in report["notes"][0]


def test_an_import_may_be_larger_than_a_picture_upload_but_is_bounded(client, mnist):
    noise = np.random.default_rng(0).integers(0, 256, 3 * 1024 * 1024, dtype=np.uint8).tobytes()
    larger = zip_of({"3/a.png": png_bytes(mnist.x_test[0]), "notes/recording.bin": noise})
    assert len(larger) > 3 * 1024 * 1024  # Over the 2 MB a picture may be, under the import's 64 MB.
    report = import_zip(client, content=larger, headers={"content-type": "application/zip"})
    assert report["added"] == 1 and report["skipped"] == 1
    # A picture upload of the same size is still refused.
    assert add(client, larger, "3").status_code == 413
