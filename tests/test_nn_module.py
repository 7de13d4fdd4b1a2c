"""nn.Module mechanics: registration, traversal, state dicts, modes, devices, repr.

The expected key names, orders and reprs are PyTorch's, written out by hand.
"""

import numpy as np
import pytest

import minigen
import minigen.nn as nn


class Block(nn.Module):
    """A small model with parameters, a buffer, a non-persistent buffer and nested children."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.BatchNorm1d(3))
        self.head = nn.Linear(3, 2)
        self.scale = nn.Parameter(minigen.ones(1))
        self.register_buffer("steps", minigen.zeros(1))
        self.register_buffer("scratch", minigen.zeros(2), persistent=False)
        self.note = "plain attribute"

    def forward(self, x):
        return self.head(self.encoder(x)) * self.scale


def test_parameter_is_a_leaf_tensor_that_requires_grad_and_shares_data():
    t = minigen.randn(2, 3)
    p = nn.Parameter(t)
    assert isinstance(p, minigen.Tensor) and p.requires_grad and p.is_leaf
    assert p.data is t.data
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:\ntensor(")


def test_attributes_are_registered_by_kind():
    m = Block()
    assert list(m._parameters) == ["scale"]
    assert list(m._buffers) == ["steps", "scratch"]
    assert list(m._modules) == ["encoder", "head"]
    assert m.note == "plain attribute" and "note" not in m._parameters
    assert m.head is m._modules["head"] and m.scale is m._parameters["scale"]


def test_named_parameters_use_dotted_pytorch_names_in_registration_order():
    names = [name for name, _ in Block().named_parameters()]
    assert names == ["scale", "encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias"] + [
        "head.weight",
        "head.bias",
    ]


def test_state_dict_keys_include_persistent_buffers_only():
    keys = list(Block().state_dict())
    assert keys == [
        "scale",
        "steps",
        "encoder.0.weight",
        "encoder.0.bias",
        "encoder.2.weight",
        "encoder.2.bias",
        "encoder.2.running_mean",
        "encoder.2.running_var",
        "encoder.2.num_batches_tracked",
        "head.weight",
        "head.bias",
    ]


def test_state_dict_values_are_detached_and_share_the_arrays():
    m = Block()
    state = m.state_dict()
    assert not state["head.weight"].requires_grad
    assert state["head.weight"].data is m.head.weight.data


def test_shared_parameter_is_listed_once():
    m = nn.Module()
    m.a = nn.Linear(2, 2)
    m.b = nn.Linear(2, 2)
    m.b.weight = m.a.weight
    assert len(list(m.parameters())) == 3


def test_reassigning_a_parameter_name_to_a_plain_value_is_an_error():
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign a Tensor to parameter 'weight'"):
        m.weight = minigen.zeros(2, 2)
    m.weight = None
    assert m.weight is None and [n for n, _ in m.named_parameters()] == ["bias"]


def test_delattr_unregisters():
    m = Block()
    del m.head
    assert "head" not in m._modules
    with pytest.raises(AttributeError, match="has no attribute 'head'"):
        m.head  # noqa: B018


def test_forgetting_super_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="must call super"):
        Broken()


def test_children_and_modules():
    m = Block()
    assert [type(c).__name__ for c in m.children()] == ["Sequential", "Linear"]
    names = [name for name, _ in m.named_modules()]
    assert names == ["", "encoder", "encoder.0", "encoder.1", "encoder.2", "head"]
    assert len(list(m.modules())) == 6


def test_load_state_dict_round_trip_copies_in_place():
    source, target = Block(), Block()
    before = target.head.weight.data
    result = target.load_state_dict(source.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert target.head.weight.data is before  # in place: optimisers keep their references
    for key, value in source.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[key].numpy(), value.numpy())


def test_load_state_dict_lists_every_problem_in_one_error():
    m = Block()
    state = m.state_dict()
    del state["head.bias"]
    del state["steps"]
    state["extra.weight"] = minigen.zeros(1)
    state["head.weight"] = minigen.zeros(5, 5)
    with pytest.raises(RuntimeError) as info:
        m.load_state_dict(state)
    message = str(info.value)
    assert message.startswith("Error(s) in loading state_dict for Block:")
    assert 'Missing key(s) in state_dict: "steps", "head.bias"' in message
    assert 'Unexpected key(s) in state_dict: "extra.weight"' in message
    assert "size mismatch for head.weight: copying a param with shape (5, 5)" in message
    assert "(2, 3)" in message


def test_failed_load_changes_nothing():
    m = Block()
    snapshot = {k: v.numpy().copy() for k, v in m.state_dict().items()}
    state = {k: minigen.full(v.shape, 7.0) if v.dtype.kind == "f" else v for k, v in m.state_dict().items()}
    state["head.bias"] = minigen.zeros(9)
    with pytest.raises(RuntimeError, match="size mismatch for head.bias"):
        m.load_state_dict(state)
    for key, value in m.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), snapshot[key])


def test_non_strict_load_reports_keys_but_still_rejects_shapes():
    m = nn.Linear(3, 2)
    result = m.load_state_dict({"weight": minigen.ones(2, 3), "other": minigen.zeros(1)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["other"]
    np.testing.assert_array_equal(m.weight.data, np.ones((2, 3)))
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        m.load_state_dict({"weight": minigen.ones(3, 3)}, strict=False)


def test_load_casts_dtype_and_accepts_numpy_arrays():
    m = nn.Linear(2, 1)
    m.load_state_dict({"weight": np.array([[1.5, 2.5]]), "bias": np.array([0.25])})
    assert m.weight.dtype == minigen.float32
    np.testing.assert_array_equal(m.weight.data, [[1.5, 2.5]])
    with pytest.raises(RuntimeError, match="value of 'bias' is a str"):
        m.load_state_dict({"weight": np.zeros((1, 2)), "bias": "zero"})


def test_train_and_eval_switch_every_module():
    m = Block()
    assert all(module.training for module in m.modules())
    assert m.eval() is m
    assert not any(module.training for module in m.modules())
    m.train()
    assert all(module.training for module in m.modules())


def test_zero_grad_both_ways():
    m = nn.Linear(3, 2)
    m(minigen.randn(4, 3)).sum().backward()
    own = m.bias.grad = minigen.ones(2)  # an array of its own is zeroed in place
    m.zero_grad(set_to_none=False)
    assert m.bias.grad is own and not own.data.any()
    assert m.weight.grad.shape == (2, 3) and not m.weight.grad.data.any()
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None


def test_to_dtype_converts_floats_in_place_and_keeps_integer_buffers():
    m = Block()
    weight = m.head.weight
    m.double()
    assert m.head.weight is weight and weight.dtype == minigen.float64
    assert m.encoder[2].running_mean.dtype == minigen.float64
    assert m.encoder[2].num_batches_tracked.dtype == minigen.int64
    out = m(minigen.randn(5, 4, dtype=minigen.float64))
    assert out.dtype == minigen.float64
    m.float()
    assert m.head.weight.dtype == minigen.float32
    with pytest.raises(TypeError, match="only to floating dtypes"):
        m.to(dtype="int64")


def test_to_device_on_cpu_and_cuda(device):
    m = Block().to(device)
    assert {p.device for p in m.parameters()} == {device}
    assert {b.device for b in m.buffers()} == {device}
    assert m(minigen.randn(5, 4, device=device)).device == device
    m.to("cpu")
    assert {p.device for p in m.parameters()} == {"cpu"}


def test_requires_grad_toggles_every_parameter():
    m = Block().requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())


def test_apply_visits_children_first():
    seen = []
    Block().apply(lambda module: seen.append(type(module).__name__))
    assert seen == ["Linear", "ReLU", "BatchNorm1d", "Sequential", "Linear", "Block"]


def test_repr_matches_pytorch_layout():
    m = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Sequential(nn.Linear(400, 20)))
    assert repr(m) == (
        "Sequential(\n"
        "  (0): Linear(in_features=784, out_features=400, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Linear(in_features=400, out_features=20, bias=True)\n"
        "  )\n"
        ")"
    )


def test_forward_not_written_is_a_clear_error():
    with pytest.raises(NotImplementedError, match="Module has no forward"):
        nn.Module()(minigen.zeros(1))


# --- containers -------------------------------------------------------------------------------


def test_sequential_applies_in_order_and_indexes_like_a_list():
    double, add_one = nn.Linear(1, 1, bias=False), nn.Linear(1, 1)
    minigen.nn.init.constant_(double.weight, 2.0)
    minigen.nn.init.constant_(add_one.weight, 1.0)
    minigen.nn.init.constant_(add_one.bias, 1.0)
    seq = nn.Sequential(double, add_one)
    assert seq(minigen.tensor([[3.0]])).item() == 7.0  # (3 * 2) + 1, not (3 + 1) * 2
    assert seq[0] is double and seq[-1] is add_one and len(seq) == 2
    assert list(seq) == [double, add_one]
    tail = seq[1:]
    assert isinstance(tail, nn.Sequential) and list(tail) == [add_one]
    with pytest.raises(IndexError, match="index 2 is out of range for Sequential of length 2"):
        seq[2]


def test_sequential_from_a_dict_uses_its_names():
    seq = nn.Sequential({"fc": nn.Linear(2, 2), "act": nn.Tanh()})
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias"]
    assert isinstance(seq[1], nn.Tanh)


def test_setitem_keeps_position_and_name():
    seq = nn.Sequential(nn.ReLU(), nn.Tanh(), nn.Sigmoid())
    seq[1] = nn.Identity()
    assert [type(m).__name__ for m in seq] == ["ReLU", "Identity", "Sigmoid"]
    with pytest.raises(TypeError, match="holds Modules"):
        seq[0] = "relu"


def test_module_list_registers_its_members():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(2)])
    layers.append(nn.Linear(2, 1))
    layers.insert(0, nn.Identity())
    owner = nn.Module()
    owner.layers = layers
    assert [n for n, _ in owner.named_parameters()] == [
        f"layers.{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")
    ]
    assert isinstance(layers[0], nn.Identity) and len(layers) == 4
