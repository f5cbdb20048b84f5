"""Our own handwriting end to end: a collection of shifted writers scored by `evaluate`, then `train --from` on it."""

import hashlib
import json
import pathlib

import numpy as np
import pytest

from conftest import run_firstnet
from firstnet import cli, evaluate, finetune, predict, shift
from firstnet.data import collection


@pytest.fixture(scope="module")
def shifted(tmp_path_factory, mnist):
    """1,200 MNIST training digits redrawn by eight other writers, as a class collection.

    Training digits, not test digits: fine-tuning on them leaves MNIST's test digits unseen, so the MNIST score
    after fine-tuning is still an honest one.
    """
    folder = tmp_path_factory.mktemp("ours") / "collection"
    images, labels = collection.shifted_digits(mnist.x_train, mnist.y_train, count=1200, seed=0)
    assert collection.write_digits(folder, images, labels) == 1200
    return folder, images, labels


def digest(folder):
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(pathlib.Path(folder).rglob("*")) if path.is_file()}


def test_shifted_writers_are_deterministic_and_unlike_mnist(mnist):
    first, labels = collection.shifted_digits(mnist.x_test, mnist.y_test, count=200, seed=5)
    again, same_labels = collection.shifted_digits(mnist.x_test, mnist.y_test, count=200, seed=5)
    other, _ = collection.shifted_digits(mnist.x_test, mnist.y_test, count=200, seed=6)
    assert np.array_equal(first, again) and np.array_equal(labels, same_labels) and not np.array_equal(first, other)
    assert first.shape == (200, 28, 28) and first.dtype == np.uint8 and int(first.max()) > 200


def test_wilson_interval_matches_known_values():
    low, high = shift.wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert shift.wilson(0, 0) == (0.0, 1.0)
    assert shift.wilson(10, 10)[1] == pytest.approx(1.0) and shift.wilson(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)
    # Many pictures give a narrow interval, few a wide one.
    assert np.subtract(*shift.wilson(800, 1000)[::-1]) < np.subtract(*shift.wilson(8, 10)[::-1]) / 5


def test_evaluate_scores_the_collection_beside_mnist_per_digit(trained_run, shifted, tmp_path, capsys):
    folder, images, labels = shifted
    out = tmp_path / "ours.png"
    assert cli.main(["evaluate", str(trained_run.run_dir), "--data", str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    expected = float((predict.predict_digits(trained_run.model, images).argmax(axis=1) == labels).mean())
    mnist_accuracy = trained_run.metrics["test_accuracy"]
    assert f"on MNIST's test digits {100 * mnist_accuracy:.1f}%, on our digits {100 * expected:.1f}%" in printed
    # The collection's source counts its pictures; the count is said once (issue 24).
    assert "(1200 pictures) (the set you named)" in printed
    for digit in range(10):
        count = int((labels == digit).sum())
        assert f"/{count:<5}" in printed
    assert out.is_file() and out.read_bytes()[:4] == b"\x89PNG"
    # The bias the lesson is about: other writers' digits are read far worse than MNIST's own.
    assert expected < mnist_accuracy - 0.15


def test_evaluate_of_a_few_pictures_cautions(trained_run, tmp_path, mnist, capsys):
    folder = tmp_path / "few"
    collection.write_digits(folder, mnist.x_test[:12], mnist.y_test[:12])
    assert cli.main(["evaluate", str(trained_run.run_dir), "--data", str(folder), "--out", str(tmp_path / "f.png")]) == 0
    printed = capsys.readouterr().out
    assert "caution: only 12 pictures" in printed and "few: a rough guess" in printed


def test_finetune_raises_our_accuracy_keeps_mnist_and_leaves_the_old_run_untouched(trained_run, shifted, tmp_path, mnist):
    folder, images, labels = shifted
    before_files = digest(trained_run.run_dir)
    config = finetune.FinetuneConfig(from_run=str(trained_run.run_dir), data=str(folder), seed=0,
                                     run_dir=str(tmp_path / "tuned"), verbose=0)
    result = finetune.finetune(config, mnist=mnist)
    tuned = result.metrics["finetune"]
    assert tuned["before"]["ours"] < tuned["after"]["ours"] - 0.08, tuned
    assert tuned["after"]["mnist_test"] >= 0.97 and tuned["before"]["mnist_test"] == pytest.approx(
        trained_run.metrics["test_accuracy"])
    assert tuned["optimizer_state"] == "kept"
    # The held-out part is the seeded one the library names (a fifth of each digit), and the after score is on it.
    images_sorted, labels_sorted, _ = collection.read_pictures(folder)
    _, held = collection.held_out_split(labels_sorted, 0.2)
    assert 235 <= len(held) <= 245 and tuned["held_out"] == len(held)
    assert tuned["trained_on"] == 1200 - len(held) == tuned["mnist_mixed"]
    scored = evaluate.evaluate_model(result.model, images_sorted[held], labels_sorted[held])
    assert scored["test_accuracy"] == pytest.approx(tuned["after"]["ours"])
    stored = json.loads((tmp_path / "tuned" / "metrics.json").read_text())
    assert stored["finetune"]["after"]["ours"] == pytest.approx(tuned["after"]["ours"]) and stored["test_accuracy"] >= 0.97
    assert digest(trained_run.run_dir) == before_files
    # Scored again on the whole collection, most of which it trained on, the fine-tuned run is told so.
    note = shift.seen_note(stored, folder)
    assert note and f"fine-tuned on {tuned['trained_on']} of these pictures" in note
    assert shift.seen_note(trained_run.metrics, folder) is None


def test_train_from_on_the_command_line_and_its_mistakes(trained_run, shifted, tmp_path, mnist, capsys):
    folder, _, _ = shifted
    done = run_firstnet("train", "--from", trained_run.run_dir, "--data", folder, "--run-dir", tmp_path / "cli",
                        "--epochs", "1", "--seed", "0", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "before: our digits (the 241 held out)" in done.stderr + done.stdout
    assert "after:" in done.stderr + done.stdout and "test_acc: 0.9" in done.stdout
    assert (tmp_path / "cli" / "model.keras").is_file()
    assert cli.main(["evaluate", str(tmp_path / "cli"), "--data", str(folder), "--out", str(tmp_path / "m.png")]) == 0
    assert "note: this run was fine-tuned on 959 of these pictures" in capsys.readouterr().out
    small = tmp_path / "small"
    collection.write_digits(small, *collection.shifted_digits(mnist.x_test, mnist.y_test, count=5))
    cases = [(["--from", str(trained_run.run_dir)], "needs --data COLLECTION"),
             (["--from", str(trained_run.run_dir), "--data", str(folder), "--fast"], "drop --fast"),
             (["--from", str(trained_run.run_dir), "--data", str(small)], "only 5 pictures"),
             (["--from", str(tmp_path / "nowhere"), "--data", str(folder)], "no such model")]
    for flags, said in cases:
        assert cli.main(["train", *flags, "--run-dir", str(tmp_path / "refused")]) == 2
        error = capsys.readouterr().err
        assert said in error and "Traceback" not in error and len(error.strip().splitlines()) == 1, error
        assert not (tmp_path / "refused").exists()


def test_runs_and_predict_say_which_run_a_fine_tuned_run_came_from():
    from firstnet import runs_table

    tuned = {"test_accuracy": 0.976, "finished_at": "2026-12-01T10:30:00", "data_full": True, "epochs": 5,
             "finetune": {"from": "runs/2026-12-01_101500", "collection": "/class/our_digits", "mnist_mixed": 240}}
    plain = {"test_accuracy": 0.981, "finished_at": "2026-12-01T10:15:00", "data_full": True, "epochs": 5}
    assert runs_table.data_label(tuned) == "our_digits+MNIST from 2026-12-01_101500"
    assert runs_table.data_label(plain) == "full MNIST"
    assert "fine-tuned on our_digits+MNIST from 2026-12-01_101500" in runs_table.model_line("m.keras", tuned)
    table = runs_table.runs_table([("runs/a", plain), ("runs/b", tuned)], "runs")
    assert "our_digits+MNIST from 2026-12-01_101500" in table and "full MNIST" in table
