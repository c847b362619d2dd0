"""The sources of one-file plugins (the README's SignSGD, an optimizer that always diverges, a suite) for tests."""

from __future__ import annotations

import textwrap


def sign_sgd_plugin(name: str, lr: float) -> str:
    """A plugin file registering sign SGD (w -= lr * sign(g)) under `name`, default lr `lr`."""
    return textwrap.dedent(f'''
        import torch
        from nightbench.optimizers import register_optimizer

        @register_optimizer("{name}", paper="a test plugin")
        class SignSGD(torch.optim.Optimizer):
            """Sign SGD: w -= lr * sign(g)."""

            def __init__(self, params, lr={lr!r}):
                super().__init__(params, dict(lr=lr))

            @torch.no_grad()
            def step(self, closure=None):
                for group in self.param_groups:
                    for p in group["params"]:
                        if p.grad is not None:
                            p.add_(p.grad.sign(), alpha=-group["lr"])
    ''')


def always_nan_plugin(name: str) -> str:
    """A plugin file registering, under `name`, an optimizer that sets every weight to NaN (every run diverges)."""
    return textwrap.dedent(f'''
        import torch
        from nightbench.optimizers import register_optimizer

        @register_optimizer("{name}")
        class AlwaysNaN(torch.optim.Optimizer):
            def __init__(self, params, lr=0.1):
                super().__init__(params, dict(lr=lr))

            @torch.no_grad()
            def step(self, closure=None):
                for group in self.param_groups:
                    for p in group["params"]:
                        p.fill_(float("nan"))
    ''')


def training_suite_plugin(name: str) -> str:
    """A user's one-file training suite named `name`: least squares on fixed random data."""
    return textwrap.dedent(f'''
        import torch
        from nightbench.optimizers import Schedule
        from nightbench.suites.base import TrainingSuite, TrainingTask

        PRESET = {{"steps": 12, "eval_every": 4, "global_batch_size": 8, "micro_batch_size": 8}}


        class LeastSquares(TrainingSuite):
            name = "{name}"
            title = "Least squares (a user's suite)"
            description = "least squares on fixed random data (a plugin suite)"
            presets = {{"paper": PRESET, "small": PRESET, "ci": PRESET}}
            target_metric = "neg_mse"
            target_values = {{"paper": None, "small": None, "ci": None}}

            def schedule(self, optimizer_name, config, task):
                return Schedule(kind="constant", total_steps=task.total_steps)

            def build(self, ctx):
                g = torch.Generator().manual_seed(7)
                x, w = torch.randn(64, 3, generator=g), torch.randn(3, generator=g)
                y = x @ w
                batch_size = ctx.config["global_batch_size"]

                def train_batches(start):
                    step = start
                    while True:
                        rows = torch.arange(step * batch_size, (step + 1) * batch_size) % 64
                        yield {{"x": x[rows], "y": y[rows]}}
                        step += 1

                def loss(model, batch):
                    return ((model(batch["x"]).squeeze(-1) - batch["y"]) ** 2).sum(), {{}}

                def evaluate(model):
                    return {{"neg_mse": -float(((model(x).squeeze(-1) - y) ** 2).mean())}}

                return TrainingTask(model=torch.nn.Linear(3, 1), train_batches=train_batches, loss=loss,
                                    count=lambda b: b["x"].shape[0], evaluate=evaluate,
                                    total_steps=ctx.config["steps"], eval_every=ctx.config["eval_every"],
                                    global_batch_size=batch_size, micro_batch_size=ctx.config["micro_batch_size"])


        SUITE = LeastSquares()
    ''')
