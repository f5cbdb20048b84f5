"""`firstnet train --devices N|all`: data-parallel training with keras.distribution, tried on virtual CPU devices.

JAX shows N virtual CPU devices when XLA_FLAGS asks before it starts, as Keras's own CI does, so these tests run
`firstnet` in fresh processes. Nothing here needs a GPU.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import needs_full_mnist, run_firstnet

pytestmark = pytest.mark.backend("jax")

FOUR_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}


def train_on(devices, loop, batch_size, data, folder):
    done = run_firstnet("train", "--devices", devices, "--loop", loop, "--batch-size", batch_size, "--epochs", "1",
                        "--hidden-units", "64", "--seed", "3", "--quiet", "--data", data, "--run-dir", folder,
                        env=FOUR_DEVICES)
    assert done.returncode == 0, done.stderr
    return json.loads((folder / "metrics.json").read_text())


# Batches of 100 split unevenly across 3 devices (padded to 102, the extra places weighing nothing) and 128 across 3
# too; 60,000 digits in 128s end with a batch of 96. The compiled loop shuffles the same way on any number of devices;
# model.fit's padded batches are shuffled by firstnet instead of by fit, so only its accuracy is the same kind.
@pytest.mark.slow
@pytest.mark.parametrize("loop, batch_size, device_counts", [("compiled", 100, ("3", "all")), ("fit", 128, ("2", "3"))])
def test_several_devices_train_as_one_does(mnist_path, tmp_path, loop, batch_size, device_counts):
    one = train_on("1", loop, batch_size, mnist_path, tmp_path / "one")
    assert one["devices"] == ["cpu:0"] and one["distribution"] is None
    for devices in device_counts:
        many = train_on(devices, loop, batch_size, mnist_path, tmp_path / f"on{devices}")
        expected = 4 if devices == "all" else int(devices)
        assert len(many["devices"]) == expected and many["distribution"] == "DataParallel"
        assert many["loop"] == loop and many["fallbacks"] == []
        assert abs(many["test_accuracy"] - one["test_accuracy"]) <= 0.005, (devices, many["test_accuracy"],
                                                                            one["test_accuracy"])
        if loop == "compiled":
            # The same digits in the same batches, each split across the devices: the same training, to rounding.
            assert abs(many["test_loss"] - one["test_loss"]) <= 1e-3 * one["test_loss"]


@pytest.mark.slow
@needs_full_mnist
def test_too_many_devices_is_one_line(tmp_path):
    done = run_firstnet("train", "--devices", "8", "--epochs", "1", cwd=tmp_path, env=FOUR_DEVICES)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert "--devices 8: this machine shows 4 device(s)" in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_several_devices_need_jax(tmp_path):
    script = ("import os, sys\n"
              "os.environ['KERAS_BACKEND'] = 'numpy'\n"
              "from firstnet import distribute\n"
              "from firstnet.errors import UserError\n"
              "try:\n"
              "    distribute.choose('2')\n"
              "except UserError as error:\n"
              "    print(error)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": "numpy"})
    assert "supports on JAX; this is Keras on numpy" in done.stdout, done.stderr


WORKER = """
import os, sys
os.environ["KERAS_BACKEND"] = "jax"
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
import keras
from jax.experimental import multihost_utils
process = int(sys.argv[1])
keras.distribution.initialize(job_addresses=sys.argv[2], num_processes=2, process_id=process)
gathered = multihost_utils.process_allgather(jax.numpy.array([process + 1.0]))
print(jax.device_count(), jax.local_device_count(), gathered.ravel().tolist(), flush=True)
"""


@pytest.mark.slow
def test_two_processes_on_this_computer_join_through_keras_distribution_initialize():
    # Keras's multi-host entry point, on CPUs: two processes on 127.0.0.1 become one set of two devices, and a
    # collective between them works (JAX's gloo). firstnet's --devices does not use it yet (README).
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(process), address], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for process in (0, 1)]
    try:
        outputs = [worker.communicate(timeout=120) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
        assert out.strip().splitlines()[-1] == "2 1 [1.0, 2.0]"
