"""The experiment ``tuixp demo`` records: fit a curve to noisy points by gradient descent.

It is also an ordinary tuixp script, to copy and edit:

    tuixp run demo_experiment.py lr=0.05 --grid model=linear,quadratic
"""

import numpy as np

import tuixp

ex = tuixp.Experiment("demo", goal="min")  # the result is an error: lower is better
n_points = ex.parameter("n_points", default=200)
noise = ex.parameter("noise", default=0.1)
lr = ex.parameter("lr", default=0.1)
epochs = ex.parameter("epochs", default=25)
model = ex.parameter("model", default="linear")


@ex.persist
def make_data(n_points, noise):
    """Points on y = 3x + 0.5 with Gaussian noise (the same points for the same parameters)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, n_points)
    y = 3.0 * x + 0.5 + rng.normal(0.0, noise, n_points)
    return np.stack([x, y])


def features(x, model):
    if model == "linear":
        return np.stack([x, np.ones_like(x)], axis=1)
    if model == "quadratic":
        return np.stack([x**2, x, np.ones_like(x)], axis=1)
    raise ValueError(f"unknown model: {model!r} (use linear or quadratic)")


@ex
def train(data, lr, epochs, model):
    x, y = data
    X = features(x, model)
    w = np.zeros(X.shape[1])
    for epoch in range(epochs):
        grad = 2.0 * X.T @ (X @ w - y) / len(y)
        w -= lr * grad
        ex.save_metric("loss", epoch=epoch, value=float(np.mean((X @ w - y) ** 2)))
    return w


@ex.result
def evaluate(w, data, model):
    """Mean squared error of the fitted curve (lower is better)."""
    x, y = data
    return round(float(np.mean((features(x, model) @ w - y) ** 2)), 6)


data = make_data(n_points, noise)
mse = evaluate(train(data, lr, epochs, model), data, model)

if __name__ == "__main__":
    print(mse.compute())
