"""Tampered .keras archives: refused by `model.load_model` (safe_mode=True) with one line, nothing written outside."""

import json
import zipfile

import pytest

from firstnet import model as firstnet_model
from firstnet.errors import UserError


def rewrite(source, target, change_config=None, extra=(), drop=()):
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as tampered:
        for item in original.infolist():
            if item.filename in drop:
                continue
            content = original.read(item.filename)
            if item.filename == "config.json" and change_config:
                content = json.dumps(change_config(json.loads(content))).encode()
            tampered.writestr(item.filename, content)
        for name, content in extra:
            tampered.writestr(name, content)


def lambda_layer(config):
    config["config"]["layers"][1] = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                                     "config": {"name": "hidden", "function": {"class_name": "__lambda__", "config": {
                                         "code": "print('ran')", "defaults": None, "closure": None}}}}
    return config


def arbitrary_module(config):
    config["config"]["layers"][1]["module"] = "os"
    config["config"]["layers"][1]["class_name"] = "system"
    return config


def arbitrary_function(config):
    config["config"]["layers"][1]["config"]["activation"] = {"module": "subprocess", "class_name": "function",
                                                             "config": "call", "registered_name": "function"}
    return config


@pytest.mark.parametrize("how", ["truncated", "lambda", "module", "function", "traversal", "bomb", "no_weights"])
def test_tampered_archives_are_refused_in_one_line(how, trained_run, tmp_path):
    source = trained_run.run_dir / "model.keras"
    target = tmp_path / "run" / "model.keras"
    target.parent.mkdir()
    if how == "truncated":
        target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    elif how in ("lambda", "module", "function"):
        rewrite(source, target, {"lambda": lambda_layer, "module": arbitrary_module, "function": arbitrary_function}[how])
    elif how == "traversal":
        rewrite(source, target, extra=[("../../escaped.txt", b"outside"), ("/tmp/firstnet-escaped.txt", b"outside")])
    elif how == "bomb":
        # 1 GB of zeros compresses to about a megabyte: a weights file that claims far more than it should.
        with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as tampered:
            for item in original.infolist():
                if item.filename != "model.weights.h5":
                    tampered.writestr(item.filename, original.read(item.filename))
            with tampered.open("model.weights.h5", "w", force_zip64=True) as stream:
                block = bytes(2**20)
                for _ in range(1024):
                    stream.write(block)
    else:
        rewrite(source, target, drop=("model.weights.h5",))
    try:
        firstnet_model.load_model(target)
        loaded = True
    except UserError as error:
        loaded = False
        assert "\n" not in str(error) and str(target) in str(error)
    # Entries named outside the archive never land outside: the run folder's parent holds only the run.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]
    assert not (tmp_path.parent / "escaped.txt").exists()
    if how != "traversal":
        assert not loaded, f"a {how} archive was loaded"
