"""The same network and recipe as a plain PyTorch loop: what a learner might write instead of Keras."""

from common import Clock, load_mnist, parse_args, print_result

clock = Clock()
args = parse_args(__doc__)

import torch  # noqa: E402
from torch import nn  # noqa: E402

import_seconds = clock.seconds()
torch.manual_seed(args.seed)

(train_images, train_labels), (test_images, test_labels) = load_mnist(args.data)
train_images = torch.from_numpy(train_images.reshape(60000, 28 * 28).astype("float32") / 255)
test_images = torch.from_numpy(test_images.reshape(10000, 28 * 28).astype("float32") / 255)
train_labels = torch.from_numpy(train_labels.astype("int64"))
test_labels = torch.from_numpy(test_labels.astype("int64"))

model = nn.Sequential(nn.Linear(28 * 28, 512), nn.ReLU(), nn.Linear(512, 10))
# Keras's initial weights (Glorot uniform kernels, zero biases) and Keras's RMSprop settings, so the recipe is the same.
for layer in (model[0], model[2]):
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
optimizer = torch.optim.RMSprop(model.parameters(), lr=0.001, alpha=0.9, eps=1e-7)
# Softmax plus categorical cross-entropy, computed together from the logits as PyTorch does it.
loss_function = nn.CrossEntropyLoss()

fit_started = clock.seconds()
for _epoch in range(args.epochs):
    order = torch.randperm(len(train_images))
    for step, start in enumerate(range(0, len(train_images), args.batch_size)):
        if args.max_steps and step >= args.max_steps:
            break
        rows = order[start : start + args.batch_size]
        optimizer.zero_grad()
        loss = loss_function(model(train_images[rows]), train_labels[rows])
        loss.backward()
        optimizer.step()
fit_seconds = clock.seconds() - fit_started

with torch.no_grad():
    logits = model(test_images)
    test_loss = float(loss_function(logits, test_labels))
    test_acc = float((logits.argmax(dim=1) == test_labels).float().mean())
print("test_acc:", test_acc)
print("test_loss:", test_loss)
print_result(torch=torch.__version__, threads=torch.get_num_threads(), import_seconds=import_seconds,
             fit_seconds=fit_seconds, test_accuracy=test_acc, test_loss=test_loss, process_seconds=clock.seconds())
