"""pytorch/examples' MNIST net and recipe (mnist/main.py), on the CPU with torch 2.13.

conv(1->32, 3) - relu - conv(32->64, 3) - relu - max pool 2 - dropout 0.25 - fc(9216->128) - relu - dropout 0.5 -
fc(128->10) - log_softmax; Adadelta at learning rate 1.0, StepLR gamma 0.7 each epoch, batch 64, 14 epochs,
inputs normalised with MNIST's mean 0.1307 and deviation 0.3081. After each epoch the test digits are scored
with the clock stopped.
"""

from common import Clock, load_mnist, parse_args, print_result

clock = Clock()
args = parse_args(__doc__)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional  # noqa: E402

import_seconds = clock.seconds()
torch.manual_seed(args.seed)
(x_train, y_train), (x_test, y_test) = load_mnist(args.data)


def tensors(images, labels):
    images = (torch.from_numpy(images.astype(np.float32) / 255).unsqueeze(1) - 0.1307) / 0.3081
    return images, torch.from_numpy(labels.astype(np.int64))


train_images, train_labels = tensors(x_train, y_train)
test_images, test_labels = tensors(x_test, y_test)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, 1), nn.Conv2d(32, 64, 3, 1)
        self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = functional.max_pool2d(functional.relu(self.conv2(functional.relu(self.conv1(x)))), 2)
        x = self.dropout2(functional.relu(self.fc1(torch.flatten(self.dropout1(x), 1))))
        return functional.log_softmax(self.fc2(x), dim=1)


model = Net()
optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
paused, reached, accuracies = 0.0, None, []
fit_started = clock.seconds()
for _epoch in range(args.epochs):
    model.train()
    order = torch.randperm(len(train_images))
    for step, first in enumerate(range(0, len(order), args.batch_size)):
        if args.max_steps and step >= args.max_steps:
            break
        rows = order[first:first + args.batch_size]
        optimizer.zero_grad()
        functional.nll_loss(model(train_images[rows]), train_labels[rows]).backward()
        optimizer.step()
    scheduler.step()
    started = clock.seconds()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(test_images).argmax(1) == test_labels).float().mean())
    accuracies.append(accuracy)
    if reached is None and accuracy >= args.target:
        reached = started - paused
    paused += clock.seconds() - started
    if reached is not None and args.stop_at_target:
        break
print_result(backend="torch", import_seconds=import_seconds, fit_seconds=clock.seconds() - fit_started - paused,
             test_accuracy=accuracies[-1], accuracies=accuracies, seconds_to_target=reached,
             process_seconds=clock.seconds() - paused, paused_seconds=paused)
