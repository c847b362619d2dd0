"""muon: torch's Muon on the hidden matrices and torch's AdamW on the rest, in one optimizer.

The registered optimizer is checked against torch.optim.Muon and torch.optim.AdamW driven directly
on the same tensors (a convolution weight as a separate (out, in*k*k) matrix), over many steps; and
the param-group policy's split is listed for bert_mlm's BERT and for ResNet-50, built from configs.
"""

from __future__ import annotations

import copy

import pytest
import torch

from nightbench.optimizers import ParamGroupPolicy, create, get_spec
from nightbench.optimizers.memory import state_bytes
from nightbench.optimizers.param_groups import HIDDEN_MATRIX_RULE
from nightbench.suites.bert_mlm.model import build_model as build_bert
from nightbench.suites.bert_mlm.presets import PRESETS as BERT_PRESETS
from nightbench.suites.resnet50_imagenet.model import build_model as build_resnet
from nightbench.suites.resnet50_imagenet.presets import PRESETS as RESNET_PRESETS

from .conformance import max_relative_error, oscillating_schedule

STEPS = 40
HP = dict(lr=0.02, weight_decay=0.05, momentum=0.9, nesterov=True, ns_steps=5, beta1=0.85, beta2=0.98, eps=1e-7)


class Net(torch.nn.Module):
    """Every kind of tensor the split must place: embedding, hidden linear, conv, norm, bias, head."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(11, 6)
        self.hidden = torch.nn.Linear(6, 9)
        self.conv = torch.nn.Conv2d(1, 4, 3, bias=False)
        self.norm = torch.nn.LayerNorm(9)
        self.head = torch.nn.Linear(9, 5)


def make_net(seed: int) -> Net:
    torch.manual_seed(seed)
    return Net()


def gradient(w: torch.Tensor, index: int, step: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1000 * step + index)
    return 0.3 * w + torch.sin(w) + 0.5 * torch.randn(w.shape, generator=gen)


def run(optimizers, tensors_per_step, steps: int) -> None:
    """Scheduled lr, then one gradient per tensor (`tensors_per_step()`: (index, tensor) pairs)."""
    for t in range(steps):
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group["lr"] = oscillating_schedule(t, group["initial_lr"])
        for i, p in tensors_per_step():
            p.grad = gradient(p.detach(), i, t)
        for optimizer in optimizers:
            optimizer.step()


@pytest.mark.parametrize("adjust_lr_fn", ["match_rms_adamw", "original"])
def test_each_group_gets_torchs_own_update(adjust_lr_fn):
    net = make_net(0)
    ours = create("muon", net, adjust_lr_fn=adjust_lr_fn, **HP)
    assert [g["group_name"] for g in ours.param_groups] == ["hidden", "regular", "excluded"]

    # The reference: torch.optim.Muon on 2-D copies of the hidden tensors (conv reshaped), AdamW on copies of the rest.
    ref = make_net(0)
    names = dict(net.named_parameters())
    hidden_names = ["hidden.weight", "conv.weight"]
    ref_named = dict(ref.named_parameters())
    matrices = {n: torch.nn.Parameter(ref_named[n].detach().reshape(ref_named[n].shape[0], -1).clone())
                for n in hidden_names}
    others = {n: p for n, p in ref_named.items() if n not in hidden_names}
    muon = torch.optim.Muon(list(matrices.values()), lr=HP["lr"], weight_decay=HP["weight_decay"],
                            momentum=HP["momentum"], nesterov=True, ns_steps=5, adjust_lr_fn=adjust_lr_fn)
    decayed = [others[n] for n in ("embed.weight", "head.weight")]
    not_decayed = [p for n, p in others.items() if n not in ("embed.weight", "head.weight")]
    adamw = torch.optim.AdamW([{"params": decayed}, {"params": not_decayed, "weight_decay": 0.0}], lr=HP["lr"],
                              betas=(HP["beta1"], HP["beta2"]), eps=HP["eps"], weight_decay=HP["weight_decay"])
    for optimizer in (ours, muon, adamw):
        for group in optimizer.param_groups:
            group["initial_lr"] = group["lr"]

    order = list(names)  # the same gradient index for a tensor on both sides
    run([ours], lambda: [(order.index(n), p) for n, p in net.named_parameters()], STEPS)

    def reference_tensors():
        pairs = [(order.index(n), p) for n, p in others.items()]
        # the conv's gradient is computed at its 4-D shape (as in the model), then viewed as the 2-D matrix
        return pairs + [(order.index(n), m) for n, m in matrices.items()]

    for t in range(STEPS):
        for optimizer in (muon, adamw):
            for group in optimizer.param_groups:
                group["lr"] = oscillating_schedule(t, group["initial_lr"])
        for i, p in reference_tensors():
            shaped = p.detach().reshape(names[order[i]].shape)
            p.grad = gradient(shaped, i, t).reshape(p.shape)
        muon.step()
        adamw.step()

    expected = {**{n: m.detach().reshape(names[n].shape) for n, m in matrices.items()},
                **{n: p.detach() for n, p in others.items()}}
    start = dict(make_net(0).named_parameters())
    for n, p in net.named_parameters():
        assert torch.equal(p.detach(), expected[n]), n
        assert max_relative_error([p], [start[n].detach()]) > 1e-2, f"{n} did not move"


def test_adjust_lr_fn_changes_the_muon_part_only():
    """Guards the test above: the two lr adjustments must give different matrices, the same AdamW tensors."""
    finals = {}
    for fn in ("match_rms_adamw", "original"):
        net = make_net(0)
        optimizer = create("muon", net, adjust_lr_fn=fn, **HP)
        for group in optimizer.param_groups:
            group["initial_lr"] = group["lr"]
        run([optimizer], lambda: list(enumerate(net.parameters())), 5)
        finals[fn] = dict(net.named_parameters())
    a, b = finals["match_rms_adamw"], finals["original"]
    assert not torch.equal(a["hidden.weight"], b["hidden.weight"])
    assert torch.equal(a["embed.weight"], b["embed.weight"]) and torch.equal(a["norm.weight"], b["norm.weight"])


def test_state_dict_resume_and_deepcopy_are_exact():
    net = make_net(1)
    optimizer = create("muon", net, **HP)
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]
    run([optimizer], lambda: list(enumerate(net.parameters())), 10)
    twin_net = copy.deepcopy(net)
    twin = create("muon", twin_net, **HP)
    twin.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    copied = copy.deepcopy(optimizer)  # pickling goes through __setstate__ too
    assert [g["hidden_matrix"] for g in copied.param_groups] == [True, False, False]
    for o, n in ((optimizer, net), (twin, twin_net)):
        run([o], lambda n=n: list(enumerate(n.parameters())), 10)
    for a, b in zip(net.parameters(), twin_net.parameters()):
        assert torch.equal(a, b)


def test_state_is_one_slot_for_matrices_and_two_for_the_rest():
    net = make_net(2)
    optimizer = create("muon", net)
    for p in net.parameters():
        p.grad = torch.randn_like(p)
    optimizer.step()
    hidden = sum(p.numel() for p in optimizer.param_groups[0]["params"])
    rest = sum(p.numel() for g in optimizer.param_groups[1:] for p in g["params"])
    steps = len([p for g in optimizer.param_groups[1:] for p in g["params"]])  # AdamW's 0-dim step counts
    assert state_bytes(optimizer) == 4 * (hidden + 2 * rest + steps)
    assert get_spec("muon").state_slots == 1


def muon_assignment(model: torch.nn.Module) -> tuple[list[str], list[str]]:
    """(tensors Muon updates, tensors AdamW updates), by parameter name."""
    optimizer = create("muon", model)
    names = {id(p): n for n, p in model.named_parameters()}
    muon = [names[id(p)] for g in optimizer.param_groups if g["hidden_matrix"] for p in g["params"]]
    adamw = [names[id(p)] for g in optimizer.param_groups if not g["hidden_matrix"] for p in g["params"]]
    assert sorted(muon + adamw) == sorted(names.values())
    return muon, adamw


def assert_no_embedding_head_or_norm_in_muon(model, muon: list[str], head_names: set[str]) -> None:
    modules = dict(model.named_modules())
    for name in muon:
        owner = modules[name.rpartition(".")[0]]
        assert not isinstance(owner, (torch.nn.Embedding, torch.nn.LayerNorm, torch.nn.BatchNorm2d)), name
        assert name not in head_names, name
        assert not name.endswith(".bias"), name


def test_bert_split_from_the_ci_preset():
    config = BERT_PRESETS["ci"]
    model = build_bert(config, vocab_size=config["vocab_size"], pad_token_id=0, seed=0)
    muon, adamw = muon_assignment(model)
    print("BERT (ci) Muon:", muon, "\nBERT (ci) AdamW:", adamw)
    assert_no_embedding_head_or_norm_in_muon(model, muon, {"cls.predictions.decoder.weight"})
    layers = config["num_layers"]
    # per layer: query, key, value, attention output, intermediate, output; plus the MLM head's transform
    assert len(muon) == 6 * layers + 1 and "cls.predictions.transform.dense.weight" in muon
    assert {"bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
            "bert.embeddings.token_type_embeddings.weight", "bert.embeddings.LayerNorm.weight"} <= set(adamw)
    # the tied LM head is the word embedding itself
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight


@pytest.mark.parametrize("model_name", ["resnet50", RESNET_PRESETS["ci"]["model"]])
def test_resnet_split(model_name):
    model = build_resnet(model_name, num_classes=10)
    muon, adamw = muon_assignment(model)
    print(f"{model_name} Muon:", muon, f"\n{model_name} AdamW:", adamw)
    assert_no_embedding_head_or_norm_in_muon(model, muon, {"fc.weight"})
    convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert sorted(muon) == sorted(f"{n}.weight" for n in convs)  # every conv (the stem too), nothing else
    assert "fc.weight" in adamw and "fc.bias" in adamw


def test_without_a_model_every_matrix_is_hidden():
    """Plain tensors carry no module names: the rule falls back to ndim >= 2 (documented)."""
    params = [torch.nn.Parameter(torch.randn(3, 3)), torch.nn.Parameter(torch.randn(3))]
    optimizer = create("muon", params)
    assert [(g["group_name"], g["hidden_matrix"]) for g in optimizer.param_groups] == \
        [("hidden", True), ("excluded", False)]


def test_the_rule_is_recorded_and_a_bad_group_is_refused():
    assert get_spec("muon").to_dict()["hidden_matrices"] == HIDDEN_MATRIX_RULE
    with pytest.raises(ValueError, match="ndim < 2"):
        create("muon", [{"params": [torch.nn.Parameter(torch.zeros(3))], "hidden_matrix": True}])
    with pytest.raises(ValueError, match="adjust_lr_fn"):
        create("muon", [torch.nn.Parameter(torch.zeros(2, 2))], adjust_lr_fn="bogus")


def test_other_optimizers_keep_two_groups():
    """The split is asked for by muon's spec only: every other optimizer's groups are as before."""
    groups = create("adam", make_net(0)).param_groups
    assert [g["group_name"] for g in groups] == ["regular", "excluded"] and "hidden_matrix" not in groups[0]
    assert ParamGroupPolicy().to_dict() == ParamGroupPolicy.from_dict({}).to_dict()
