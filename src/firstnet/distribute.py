"""Training on more than one device: Keras's `keras.distribution.DataParallel` over the devices a machine has (JAX).

Data parallel: every device holds the whole network, each takes a share of every batch, and their gradients are
summed before each update, so the training is the one-device training, computed in parts. On a machine with GPUs
the devices are the GPUs; on a CPU, JAX can be told to show N virtual devices (XLA_FLAGS=
--xla_force_host_platform_device_count=N, set before the program starts), which is how the tests try it.
"""

import contextlib
import dataclasses

from firstnet.errors import UserError


@dataclasses.dataclass
class Devices:
    """The devices a run trains on: Keras's names for them ("cpu:0", "gpu:1"), and its DataParallel distribution."""

    names: list
    distribution: object = None

    @property
    def count(self):
        return max(len(self.names), 1)

    def padded(self, batch_size):
        """A batch's size rounded up to a whole share per device (the extra digits weigh nothing)."""
        return -(-batch_size // self.count) * self.count

    def describe(self):
        return {"devices": self.names or None, "distribution": "DataParallel" if self.distribution else None}


def choose(asked):
    """The devices for `--devices asked`: None or 1 for one device, a number, or "all" for every device JAX sees."""
    import keras

    if asked in (None, 1, "1"):
        # Keras lists devices only where it can distribute (JAX); elsewhere the backend's own default device is used.
        return Devices(names=_available()[:1] if keras.backend.backend() == "jax" else [])
    if keras.backend.backend() != "jax":
        raise UserError(f"--devices {asked}: training on several devices uses keras.distribution, which firstnet "
                        f"supports on JAX; this is Keras on {keras.backend.backend()} (set KERAS_BACKEND=jax)")
    available = _available()
    if asked == "all":
        count = len(available)
    else:
        try:
            count = int(asked)
        except ValueError:
            raise UserError(f"--devices {asked}: give a number of devices, like 2, or all") from None
    if not 1 <= count <= len(available):
        raise UserError(f"--devices {asked}: this machine shows {len(available)} device(s) ({', '.join(available)}); "
                        "on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N shows N virtual ones")
    names = available[:count]
    distribution = keras.distribution.DataParallel(devices=names) if count > 1 else None
    return Devices(names=names, distribution=distribution)


def _available():
    import keras

    return list(keras.distribution.list_devices())


@contextlib.contextmanager
def scope(devices):
    """Build, compile and train inside this: with several devices, Keras places the variables on all of them."""
    if devices is None or devices.distribution is None:
        yield
        return
    with devices.distribution.scope():
        yield


def mesh(devices):
    """The JAX mesh of `devices` (one axis, "batch"), for the compiled loop; None for one device."""
    if devices is None or devices.count < 2:
        return None
    import jax
    import numpy as np

    by_name = {f"{device.platform}:{device.id}": device for device in jax.devices()}
    return jax.sharding.Mesh(np.array([by_name[name] for name in devices.names]), ("batch",))
