"""The GPU check of the optimizer steps: one command, a few minutes on one GPU.

    python tests/benchmarks/gpu_check.py [--out results.json]           # needs CUDA
    python tests/benchmarks/gpu_check.py --device cpu --tiny            # the same logic, tiny, on CPU

For every registered builtin (the optimizers written here in both bodies, `[single]` and `[multi]`;
`foreach=None` picks multi-tensor on a GPU) and for torch's SGD-momentum and AdamW in their
foreach and fused forms, on BERT-Base's parameters (BertForMaskedLM built from a config, no
download), it prints:
  - the optimizer step time (median of timed steps on fixed random gradients);
  - the bytes the step moves, counted from the aten ops it dispatches (every tensor an op reads,
    writes or mutates), divided by the step time, as a fraction of the bandwidth of a plain copy
    kernel measured at the start;
  - aten ops and host reads (`aten._local_scalar_dense`) per step, counted by a TorchDispatchMode;
  - whether the step runs silently under torch.cuda.set_sync_debug_mode("error") (no host sync);
  - the time of one end-to-end BERT-Base masked-LM training step (random tokens) with it.
Without CUDA (and without --device cpu) it says so and exits with status 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

import torch

if __package__:
    from .dispatch_counts import OpCounter
    from .fixed_gradients import fixed_gradient_step
else:  # run as a script: python tests/benchmarks/gpu_check.py
    from dispatch_counts import OpCounter
    from fixed_gradients import fixed_gradient_step

WRITTEN_HERE = ("nsgd", "nsgd_momentum", "nigt", "nigt_adaptive", "lars", "lamb")


class TrafficCounter(OpCounter):
    """aten ops, host reads, and bytes read/written by the ops dispatched in the block."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.ops[func] += 1
        written = set()
        for i, argument in enumerate(func._schema.arguments):
            if argument.alias_info is not None and argument.alias_info.is_write:
                value = args[i] if i < len(args) else kwargs.get(argument.name)
                written.update(id(t) for t in _tensors(value))
                self.bytes += sum(_nbytes(t) for t in _tensors(value))  # the write of a mutated input
        self.bytes += sum(_nbytes(t) for t in _tensors((args, kwargs)))  # every input is read
        out = func(*args, **kwargs)
        self.bytes += sum(_nbytes(t) for t in _tensors(out) if id(t) not in written and not t._is_view())
        return out


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size() if t.dim() > 0 else 0  # 0-dim scalars: negligible traffic


def median_seconds(fn: Callable[[], None], device: torch.device, repeats: int, warmup: int) -> float:
    """`warmup` untimed calls, then the memory_overhead suite's timing: the median of `repeats` synchronized calls."""
    from nightbench.suites.memory_overhead.measure import median_seconds as synchronized_median

    for _ in range(warmup):
        fn()
    return synchronized_median(fn, repeats, device)


def copy_bandwidth(device: torch.device, numel: int) -> float:
    """Bytes per second of dst.copy_(src) (one read and one write of every element)."""
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    seconds = median_seconds(lambda: dst.copy_(src), device, repeats=10, warmup=3)
    return 2 * src.numel() * src.element_size() / seconds


def bert_model(device: torch.device, tiny: bool) -> torch.nn.Module:
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                        vocab_size=1024, max_position_embeddings=64) if tiny else BertConfig()
    torch.manual_seed(0)
    return BertForMaskedLM(config).to(device)


def mlm_batch(model: torch.nn.Module, batch: int, length: int, device: torch.device) -> dict:
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, vocab, (batch, length), generator=gen)
    labels = torch.where(torch.rand(batch, length, generator=gen) < 0.15, tokens, torch.full_like(tokens, -100))
    return {"input_ids": tokens.to(device), "labels": labels.to(device)}


def entries() -> dict[str, Callable[[torch.nn.Module], torch.optim.Optimizer]]:
    """Every builtin (default body; plus the single-tensor body of ours) and torch's fast forms."""
    from nightbench.optimizers import create, names

    out: dict[str, Callable] = {}
    for name in names():
        if name in WRITTEN_HERE:
            out[f"{name} [single]"] = lambda m, n=name: create(n, m, foreach=False)
            out[f"{name} [multi]"] = lambda m, n=name: create(n, m, foreach=True)
        else:
            out[name] = lambda m, n=name: create(n, m)
    out["torch SGD-momentum foreach"] = lambda m: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, foreach=True)
    out["torch SGD-momentum fused"] = lambda m: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, fused=True)
    out["torch AdamW foreach"] = lambda m: torch.optim.AdamW(m.parameters(), lr=1e-4, foreach=True)
    out["torch AdamW fused"] = lambda m: torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True)
    return out


def gradients_per_step(name: str) -> int:
    from nightbench.optimizers import get_spec

    base = name.split(" ")[0]  # 'nigt [multi]' -> 'nigt'; torch's entries are not registered
    try:
        return get_spec(base).gradients_per_step
    except KeyError:  # torch's own entries
        return 1


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict,
                  per_step: int) -> Callable[[], None]:
    """zero_grad, forward, backward, step (two half-batches through the closure where needed)."""
    if per_step == 1:
        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            model(**batch).loss.backward()
            optimizer.step()
        return step
    half = batch["input_ids"].shape[0] // 2
    halves = [{k: v[:half] for k, v in batch.items()}, {k: v[half:] for k, v in batch.items()}]
    calls = [0]

    def closure():
        optimizer.zero_grad(set_to_none=True)
        loss = model(**halves[calls[0] % 2]).loss
        loss.backward()
        calls[0] += 1
        return loss.detach()

    return lambda: optimizer.step(closure)


def sync_free(step: Callable[[], None], device: torch.device) -> str:
    """'yes' if the step runs under set_sync_debug_mode("error") without raising; else the error."""
    if device.type != "cuda":
        return "n/a (cpu)"
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
        return "yes"
    except RuntimeError as exc:
        return "NO: " + str(exc).splitlines()[0][:80]
    finally:
        torch.cuda.set_sync_debug_mode(0)


def check(device: torch.device, tiny: bool, names_wanted: list[str] | None) -> dict:
    repeats, warmup = (2, 1) if tiny else (10, 3)
    bandwidth = copy_bandwidth(device, 2**20 if tiny else 2**28)
    model = bert_model(device, tiny)
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator(device=device).manual_seed(2)
    grads = [[torch.randn(p.shape, generator=gen, device=device) * 1e-3 for p in params] for _ in range(2)]
    batch = mlm_batch(model, 4 if tiny else 32, 32 if tiny else 128, device)
    start = [p.detach().clone() for p in params]
    rows = {}
    for name, make in entries().items():
        if names_wanted and name not in names_wanted:
            continue
        with torch.no_grad():
            for p, s in zip(params, start):
                p.copy_(s)
        per_step = gradients_per_step(name)
        optimizer = make(model)
        step = fixed_gradient_step(optimizer, params, grads[:per_step])
        seconds = median_seconds(step, device, repeats, warmup)
        counter = TrafficCounter()
        with counter:
            step()
        silent = sync_free(step, device)
        train = median_seconds(training_step(model, optimizer, batch, per_step), device, max(1, repeats // 2), 1)
        rows[name] = {"step_ms": seconds * 1e3, "bytes_per_step": counter.bytes,
                      "bandwidth_fraction": counter.bytes / seconds / bandwidth, "aten_ops": counter.total,
                      "host_reads": counter.host_reads, "sync_free": silent, "train_step_ms": train * 1e3}
        del optimizer, step
        for p in params:
            p.grad = None
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__, "parameters": sum(p.numel() for p in params), "tensors": len(params),
            "copy_bandwidth_GBps": bandwidth / 1e9, "tiny": tiny, "rows": rows}


def format_report(result: dict) -> list[str]:
    lines = [f"{result['device_name']} (torch {result['torch']}): {result['parameters']:,} parameters in "
             f"{result['tensors']} tensors{' (tiny BERT)' if result['tiny'] else ' (BERT-Base)'}; "
             f"copy bandwidth {result['copy_bandwidth_GBps']:.1f} GB/s",
             f"{'optimizer':<34} {'step ms':>9} {'MB moved':>9} {'of bw':>6} {'ops':>5} {'reads':>6} "
             f"{'train ms':>9}  sync-free"]
    for name, r in result["rows"].items():
        lines.append(f"{name:<34} {r['step_ms']:9.2f} {r['bytes_per_step'] / 2**20:9.1f} "
                     f"{r['bandwidth_fraction']:6.2f} {r['aten_ops']:5d} {r['host_reads']:6d} "
                     f"{r['train_step_ms']:9.1f}  {r['sync_free']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda (default when available), cuda:N, or cpu")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer BERT and few repeats (checks the script)")
    parser.add_argument("--only", action="append", metavar="NAME", help="only these entries (repeatable)")
    parser.add_argument("--out", default=None, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if args.device is None and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing measured (use --device cpu --tiny to check the script)")
        return 0
    device = torch.device(args.device or "cuda")
    result = check(device, args.tiny, args.only)
    print("\n".join(format_report(result)))
    if args.out:
        with open(args.out, "w") as out:
            json.dump(result, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
