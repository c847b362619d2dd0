"""The norm-reduction hook: optimizers that hold ZeRO-like pieces of tensors take the same steps.

Two "ranks" run in two threads, each with the optimizer over its pieces of every tensor (the flat
layout of a param group cut at a point inside a tensor, as ZeRO 1/2 cuts it), summing squared norms
through a thread barrier. After several steps the reassembled parameters must equal those of the
optimizer that saw whole tensors. float64 makes the comparison sharp.
"""

from __future__ import annotations

import threading

import pytest
import torch

from nightbench.optimizers import create
from nightbench.optimizers.sharding import (
    ELEMENTWISE,
    GLOBAL,
    NORM_HOOK,
    get_norm_sharding,
    set_norm_sharding,
    shard_support,
    whole_norms,
)

RANKS = 2


class ThreadCollective:
    """all_reduce_sum between RANKS threads."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(RANKS, timeout=30)
        self.buffer: list[torch.Tensor | None] = [None] * RANKS
        self.calls = [0] * RANKS

    def all_reduce_sum(self, rank: int, values: torch.Tensor) -> torch.Tensor:
        self.calls[rank] += 1
        self.buffer[rank] = values.clone()
        self.barrier.wait()
        total = sum(self.buffer)
        self.barrier.wait()  # nobody overwrites the buffer before everyone has read it
        return total


class PieceSharding:
    def __init__(self, collective: ThreadCollective, rank: int, layer_of: dict[int, int], num_layers: int):
        self.collective, self.rank, self._layer_of, self.num_layers = collective, rank, layer_of, num_layers

    def layer_of(self, piece: torch.Tensor) -> int:
        return self._layer_of[id(piece)]

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        return self.collective.all_reduce_sum(self.rank, values)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 4), torch.nn.Tanh(),
                               torch.nn.Linear(4, 3)).double()


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(16, 6, generator=g, dtype=torch.float64), torch.randn(16, 3, generator=g, dtype=torch.float64)


def _loss(model: torch.nn.Module, step: int) -> torch.Tensor:
    x, y = _batch(step)
    return ((model(x) - y) ** 2).mean()


class ShardedRun:
    """RANKS optimizers over pieces of the model's tensors, laid out and cut like ZeRO 1/2."""

    def __init__(self, name: str, reference_model: torch.nn.Module, reference: torch.optim.Optimizer,
                 hyperparameters: dict, hook: bool = True, foreach: bool | None = None):
        self.model = _model()
        self.tensors = list(self.model.parameters())  # layer i = the i-th tensor of the model
        index = {id(p): i for i, p in enumerate(reference_model.parameters())}
        self.collective = ThreadCollective()
        self.pieces: list[list[tuple[torch.Tensor, int, int, int]]] = [[] for _ in range(RANKS)]  # (piece, layer, a, b)
        groups: list[list[dict]] = [[] for _ in range(RANKS)]
        layer_of: list[dict[int, int]] = [{} for _ in range(RANKS)]
        for group in reference.param_groups:
            sizes = [p.numel() for p in group["params"]]
            total = sum(sizes)
            cut = sizes[0] + sizes[1] // 2 if len(sizes) > 1 else total // 2  # inside the second tensor
            bounds = [(0, cut), (cut, total)]
            offset = 0
            per_rank = [[] for _ in range(RANKS)]
            for p, size in zip(group["params"], sizes):
                layer = index[id(p)]
                for rank, (low, high) in enumerate(bounds):
                    a, b = max(low, offset), min(high, offset + size)
                    if a < b:
                        piece = p.detach().reshape(-1)[a - offset:b - offset].clone()
                        per_rank[rank].append(piece)
                        layer_of[rank][id(piece)] = layer
                        self.pieces[rank].append((piece, layer, a - offset, b - offset))
                offset += size
            settings = {k: v for k, v in group.items() if k != "params"}
            for rank in range(RANKS):
                groups[rank].append({**settings, "params": per_rank[rank]})
        body = {} if foreach is None else {"foreach": foreach}
        self.optimizers = [create(name, groups[rank], **body, **hyperparameters) for rank in range(RANKS)]
        if hook:
            for rank, optimizer in enumerate(self.optimizers):
                set_norm_sharding(optimizer, PieceSharding(self.collective, rank, layer_of[rank], len(index)))

    def step(self, step: int) -> None:
        with torch.no_grad():  # the model holds what the pieces hold; its gradient is the whole one
            for rank in range(RANKS):
                for piece, layer, a, b in self.pieces[rank]:
                    self.tensors[layer].view(-1)[a:b] = piece
        self.model.zero_grad()
        _loss(self.model, step).backward()
        for rank in range(RANKS):
            for piece, layer, a, b in self.pieces[rank]:
                piece.grad = self.tensors[layer].grad.reshape(-1)[a:b].clone()
        errors = []

        def run(rank: int) -> None:
            try:
                self.optimizers[rank].step()
            except Exception as exc:  # surfaced below
                errors.append(exc)
                self.collective.barrier.abort()

        threads = [threading.Thread(target=run, args=(rank,)) for rank in range(RANKS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def assembled(self) -> list[torch.Tensor]:
        out = [t.detach().clone().reshape(-1) for t in self.tensors]
        for rank in range(RANKS):
            for piece, layer, a, b in self.pieces[rank]:
                out[layer][a:b] = piece
        return out


def _train_both(name: str, hyperparameters: dict, steps: int = 6, hook: bool = True, foreach: bool | None = None):
    model = _model()
    reference = create(name, model, **hyperparameters)
    sharded = ShardedRun(name, model, reference, hyperparameters, hook=hook, foreach=foreach)
    for step in range(steps):
        reference.zero_grad()
        _loss(model, step).backward()
        reference.step()
        sharded.step(step)
    return list(model.parameters()), sharded


CASES = [
    ("nsgd", {"lr": 0.05}),
    ("nsgd", {"lr": 0.05, "norm": "global", "weight_norm_scaling": True}),
    ("nsgd_momentum", {"lr": 0.05, "weight_norm_scaling": True, "weight_decay": 0.01}),
    ("nsgd_momentum", {"lr": 0.05, "norm": "global"}),
    ("nigt", {"lr": 0.05}),
    ("nigt", {"lr": 0.05, "weight_norm_scaling": True, "weight_decay": 0.01}),
    ("nigt", {"lr": 0.05, "norm": "global", "weight_norm_scaling": True}),
    ("lars", {"lr": 0.5}),
    ("lars", {"lr": 0.5, "momentum": 0.0, "weight_decay": 0.0}),
    ("lamb", {"lr": 0.01}),
    ("lamb", {"lr": 0.01, "phi": "clamp", "phi_max": 0.5}),
    ("adam", {"lr": 0.01}),
]


@pytest.mark.parametrize("foreach", [None, True], ids=["default body", "multi-tensor body"])
@pytest.mark.parametrize("name,hyperparameters", CASES, ids=lambda v: v if isinstance(v, str) else "-".join(
    f"{k}={x}" for k, x in v.items()))
def test_pieces_with_the_hook_step_like_whole_tensors(name, hyperparameters, foreach):
    if foreach and name in ("sgd", "adam"):
        pytest.skip("torch's own optimizers: their foreach body is torch's")
    whole, sharded = _train_both(name, hyperparameters, foreach=foreach)
    for expected, got in zip(whole, sharded.assembled()):
        torch.testing.assert_close(got, expected.detach().reshape(-1), rtol=1e-12, atol=1e-12)
    if shard_support(sharded.optimizers[0]) == NORM_HOOK:  # one all-reduce per step, on every rank
        assert sharded.collective.calls == [6, 6]


@pytest.mark.parametrize("foreach", [None, True], ids=["default body", "multi-tensor body"])
@pytest.mark.parametrize("name", ["nsgd_momentum", "nigt", "lars", "lamb"])
def test_pieces_without_the_hook_take_other_steps(name, foreach):
    """The comparison above can fail: norms of pieces are not norms of layers."""
    whole, sharded = _train_both(name, {"lr": 0.05}, hook=False, foreach=foreach)
    adapted = [i for i, p in enumerate(whole) if p.ndim >= 2]  # biases are not normalized
    start = [p.detach().reshape(-1) for p in _model().parameters()]
    moved = max(float((whole[i].detach().reshape(-1) - start[i]).abs().max()) for i in adapted)
    got = sharded.assembled()
    worst = max(float((got[i] - whole[i].detach().reshape(-1)).abs().max()) for i in adapted)
    assert worst > 0.01 * moved  # at least 1% of how far the normalized tensors moved


def test_nigt_swap_on_pieces_matches_whole_tensors():
    model = _model()
    reference = create("nigt", model, lr=0.05)
    sharded = ShardedRun("nigt", model, reference, {"lr": 0.05})
    for step in range(3):
        reference.zero_grad()
        _loss(model, step).backward()
        reference.step()
        sharded.step(step)
    reference.eval()
    for optimizer in sharded.optimizers:
        optimizer.eval()
    for expected, got in zip(model.parameters(), sharded.assembled()):
        torch.testing.assert_close(got, expected.detach().reshape(-1), rtol=1e-12, atol=1e-12)


def test_whole_norms_unsharded_combines_per_key():
    norms = whole_norms(None, [(GLOBAL, (3.0, 1.0)), ("x", (2.0, 0.0)), (GLOBAL, (4.0, 0.0))])
    assert norms == [(5.0, 1.0), (2.0, 0.0), (5.0, 1.0)]
    assert whole_norms(None, []) == []


def test_whole_norms_sharded_sums_squares_over_ranks_once():
    collective = ThreadCollective()
    results: dict[int, list] = {}

    def rank_work(rank: int) -> None:
        sharding = PieceSharding(collective, rank, {}, num_layers=3)
        entries = [(0, (3.0,)), (GLOBAL, (1.0,))] if rank == 0 else [(0, (4.0,)), (2, (2.0,))]
        results[rank] = whole_norms(sharding, entries)

    threads = [threading.Thread(target=rank_work, args=(r,)) for r in range(RANKS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == [(5.0,), (1.0,)]
    assert results[1] == [(5.0,), (2.0,)]
    assert collective.calls == [1, 1]


def test_whole_norms_rejects_keys_that_are_not_layers():
    sharding = PieceSharding(ThreadCollective(), 0, {}, num_layers=2)
    with pytest.raises(ValueError, match="layer index"):
        whole_norms(sharding, [(5, (1.0,))])


def test_shard_support_declarations():
    model = torch.nn.Linear(2, 2)
    assert shard_support(create("nigt", model)) == NORM_HOOK
    assert shard_support(create("nsgd_momentum", model)) == NORM_HOOK
    assert shard_support(create("adam", model)) == ELEMENTWISE
    assert shard_support(create("sgd", model)) == ELEMENTWISE
    assert shard_support(create("lars", model)) == NORM_HOOK
    assert shard_support(create("lamb", model)) == NORM_HOOK
    assert shard_support(create("nigt_adaptive", model)) is None  # its two-gradient scalars are not hooked

    class Custom(torch.optim.SGD):  # a subclass may compute anything
        pass

    assert shard_support(Custom(model.parameters(), lr=0.1)) is None
    optimizer = create("nigt", model)
    assert get_norm_sharding(optimizer) is None
    set_norm_sharding(optimizer, "marker")
    assert get_norm_sharding(optimizer) == "marker"


class OneProcess:
    """A NormSharding of one process holding every piece: its all-reduce is the identity."""

    def __init__(self, layer_of: dict[int, int], num_layers: int):
        self._layer_of, self.num_layers = layer_of, num_layers

    def layer_of(self, piece: torch.Tensor) -> int:
        return self._layer_of[id(piece)]

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        return values


@pytest.mark.parametrize("name,hyperparameters", [c for c in CASES if c[0] not in ("sgd", "adam")],
                         ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={x}" for k, x in v.items()))
def test_sharded_multi_tensor_step_reads_nothing_back(name, hyperparameters):
    """Under the hook the multi-tensor body sums on the device: no host read inside step()."""
    from ..benchmarks.dispatch_counts import OpCounter

    model = _model()
    pieces = [p.detach().reshape(-1)[: max(1, p.numel() // 2)].clone() for p in model.parameters()]
    optimizer = create(name, [{"params": pieces}], foreach=True, **hyperparameters)
    set_norm_sharding(optimizer, OneProcess({id(piece): i for i, piece in enumerate(pieces)}, len(pieces)))
    for step in range(3):
        for piece in pieces:
            piece.grad = torch.randn(piece.shape, generator=torch.Generator().manual_seed(step), dtype=torch.float64)
        counter = OpCounter()
        with counter:
            optimizer.step()
        assert counter.total > 0 and counter.host_reads == 0, (step, counter.host_reads)
