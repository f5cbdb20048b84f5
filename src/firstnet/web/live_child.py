"""The training process the page starts: `python -m firstnet.web.live_child KNOBS_JSON RUN_DIR [DATA]`.

It runs `firstnet.train.train` with a LiveWatcher (web/watcher.py) and writes one JSON event per line on its
standard output, and reads "pause", "resume" and "stop" lines on its standard input. The page's fine-tuning
(`... live_child finetune FROM_RUN COLLECTION RUN_DIR`) runs `firstnet.finetune` the same way, its loop's events
sent as they are. A process of its own keeps
the server light and answering, and when it ends, every byte and thread that training used goes with it.
"""

import dataclasses
import json
import os
import sys
import threading
import traceback


def read_commands(stream, control):
    """Pass each line of `stream` to `control`; the end of the stream (the server has gone) means stop."""
    for line in stream:
        control.command(line.strip())
    control.command("stop")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    # The events get the real standard output to themselves; whatever a library prints goes to standard error.
    events = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    lock = threading.Lock()

    def send(payload):
        text = json.dumps(payload, allow_nan=False, separators=(",", ":"))
        with lock:
            events.write(text + "\n")
            events.flush()

    from firstnet.web import watcher as live_watcher

    control = live_watcher.Control()
    threading.Thread(target=read_commands, args=(sys.stdin, control), daemon=True).start()
    try:
        return run(argv, send, control)
    except KeyboardInterrupt:
        send({"kind": "stopped", "text": "stopped before training began; nothing was saved"})
        return 130
    except Exception as error:  # noqa: BLE001 - whatever went wrong, the page is told in one line.
        from firstnet.errors import UserError

        if not isinstance(error, UserError):
            traceback.print_exc()
        send({"kind": "error", "text": str(error) or type(error).__name__})
        return 2 if isinstance(error, UserError) else 1


def run(argv, send, control):
    if argv[:1] == ["finetune"]:
        return run_finetune(argv[1:], send)
    knobs_json, run_dir, data_path = (argv + [None])[:3]
    from firstnet.web import knobs as web_knobs

    knobs = web_knobs.Knobs.model_validate_json(knobs_json)
    config = knobs.config(run_dir=run_dir, data=data_path or None)
    send({"kind": "loading", "text": "loading the digits and Keras"})
    from firstnet import data as mnist_data, train
    from firstnet.web import watcher as live_watcher

    data = mnist_data.load_mnist(config.data)
    if knobs.train_digits is not None and knobs.train_digits < len(data.x_train):
        # The first digits of the training set, the same ones every time: a shorter lesson on a slow laptop.
        data = dataclasses.replace(data, x_train=data.x_train[: knobs.train_digits],
                                   y_train=data.y_train[: knobs.train_digits])
    watcher = live_watcher.LiveWatcher(data, config, send, control)
    result = train.train(config, data=data, watchers=[watcher])
    metrics = result.metrics
    send({"kind": "trained", "run": str(result.run_dir), "interrupted": bool(metrics.get("interrupted")),
          "test_accuracy": live_watcher.finite(metrics["test_accuracy"]),
          "test_loss": live_watcher.finite(metrics["test_loss"]),
          "epochs_completed": metrics.get("epochs_completed")})
    return 0


def run_finetune(argv, send):
    """Fine-tune FROM_RUN on COLLECTION into RUN_DIR with the command line's defaults; each loop event is sent."""
    from_run, collection, run_dir = argv
    from firstnet import finetune

    config = finetune.FinetuneConfig(from_run=from_run, data=collection, run_dir=run_dir, verbose=0)
    result = finetune.finetune(config, watchers=[lambda event: send(event.as_json())])
    send({"kind": "trained", "run": str(result.run_dir), "finetune": result.metrics.get("finetune")})
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # As `firstnet` itself does: everything is written and synced; skip tearing down Keras and JAX at exit.
    os._exit(code)
