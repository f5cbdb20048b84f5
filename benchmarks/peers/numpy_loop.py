"""The same network and recipe written from scratch in NumPy: forward, backward, RMSprop, nothing else."""

from common import Clock, load_mnist, parse_args, print_result

clock = Clock()
args = parse_args(__doc__)

import numpy as np  # noqa: E402

import_seconds = clock.seconds()
rng = np.random.default_rng(args.seed)

(train_images, train_labels), (test_images, test_labels) = load_mnist(args.data)
train_images = train_images.reshape(60000, 28 * 28).astype("float32") / 255
test_images = test_images.reshape(10000, 28 * 28).astype("float32") / 255
train_targets = np.eye(10, dtype="float32")[train_labels]


def glorot_uniform(fan_in, fan_out):
    limit = np.sqrt(6 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype("float32")


params = {"w1": glorot_uniform(784, 512), "b1": np.zeros(512, "float32"),
          "w2": glorot_uniform(512, 10), "b2": np.zeros(10, "float32")}
# Keras's RMSprop defaults: learning rate 0.001, rho 0.9, epsilon 1e-7.
squares = {name: np.zeros_like(value) for name, value in params.items()}
learning_rate, rho, epsilon = np.float32(0.001), np.float32(0.9), np.float32(1e-7)


def forward(images):
    hidden = np.maximum(images @ params["w1"] + params["b1"], 0)
    logits = hidden @ params["w2"] + params["b2"]
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return hidden, probabilities


fit_started = clock.seconds()
for _epoch in range(args.epochs):
    order = rng.permutation(len(train_images))
    for step, start in enumerate(range(0, len(train_images), args.batch_size)):
        if args.max_steps and step >= args.max_steps:
            break
        rows = order[start : start + args.batch_size]
        images, targets = train_images[rows], train_targets[rows]
        hidden, probabilities = forward(images)
        # Softmax with cross-entropy: the gradient at the logits is (p - y) / batch.
        d_logits = (probabilities - targets) / len(rows)
        d_hidden = (d_logits @ params["w2"].T) * (hidden > 0)
        grads = {"w1": images.T @ d_hidden, "b1": d_hidden.sum(axis=0),
                 "w2": hidden.T @ d_logits, "b2": d_logits.sum(axis=0)}
        for name, grad in grads.items():
            squares[name] = rho * squares[name] + (1 - rho) * grad * grad
            params[name] -= learning_rate * grad / (np.sqrt(squares[name]) + epsilon)
fit_seconds = clock.seconds() - fit_started

_, probabilities = forward(test_images)
test_loss = float(-np.log(np.clip(probabilities[np.arange(10000), test_labels], 1e-7, 1)).mean())
test_acc = float((probabilities.argmax(axis=1) == test_labels).mean())
print("test_acc:", test_acc)
print("test_loss:", test_loss)
print_result(numpy=np.__version__, import_seconds=import_seconds, fit_seconds=fit_seconds, test_accuracy=test_acc,
             test_loss=test_loss, process_seconds=clock.seconds())
