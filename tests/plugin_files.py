"""The source of a user's one-file optimizer plugin (the README's SignSGD), for tests that add one."""

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
