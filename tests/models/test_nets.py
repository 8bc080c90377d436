"""Every registered net: shapes, gradients on every parameter, finite outputs, any frame count."""

from __future__ import annotations

import pytest
import torch

from models.registry import build_config, create_model, net_names, resolve_net

TINY = {"channels": (8, 8, 16, 16), "embedding_dim": 12, "num_classes": 5}
VARIANTS = [(name, {}) for name in net_names()] + [
    ("convlstm_fusion", {"temporal": "convlstm", "kernel_size": 3}),
    ("convlstm_fusion", {"hidden": 6}),
    ("convlstm_fusion", {"branches": "lstm"}),
    ("convlstm_fusion", {"branches": "lstm", "hidden": 6}),
    ("baseline", {"stem_stride": 2, "parts": 8}),
]


@pytest.fixture(params=VARIANTS, ids=lambda v: f"{v[0]}-{'-'.join(map(str, v[1].values()))}")
def net(request):
    name, extra = request.param
    torch.manual_seed(0)
    return create_model(name, **TINY, **extra)


def test_training_outputs_and_gradients(net):
    sils = torch.rand(4, 6, 64, 44)
    outputs = net(sils)
    parts = net.config.parts
    assert outputs["embeddings"].shape == (4, 12, parts)
    assert outputs["logits"].shape == (4, 5, parts)
    loss = outputs["embeddings"].pow(2).mean() + outputs["logits"].logsumexp(1).mean()
    loss.backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("frames", [1, 7, 30])
def test_embedding_for_any_frame_count(net, frames):
    net.eval()
    with torch.no_grad():
        embedding = net.embed(torch.rand(2, frames, 64, 44))
        assert embedding.shape == (2, 12, net.config.parts)
        assert torch.isfinite(embedding).all()
        np_forward = net(torch.rand(2, frames, 64, 44))["embeddings"]
        assert np_forward.shape == embedding.shape


def test_embed_equals_forward_embeddings_and_is_batch_independent(net):
    net.eval()
    sils = torch.rand(3, 5, 64, 44)
    with torch.no_grad():
        together = net.embed(sils)
        torch.testing.assert_close(together, net(sils)["embeddings"])
        alone = torch.cat([net.embed(sils[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "extra", "order_free"),
    [
        ("baseline", {}, True),
        ("convlstm_fusion", {}, False),
        ("convlstm_fusion", {"branches": "lstm"}, False),
    ],
)
def test_frame_order_matters_only_with_the_recurrent_branch(name, extra, order_free):
    torch.manual_seed(0)
    sils = torch.rand(2, 6, 64, 44)
    net = create_model(name, **TINY, **extra).eval()
    with torch.no_grad():
        same = torch.allclose(net.embed(sils), net.embed(sils.flip(1)), atol=1e-5)
    assert same == order_free


def test_lstm_only_arm_has_no_max_branch_and_no_fusion_conv():
    fused = create_model("convlstm_fusion", **TINY)
    alone = create_model("convlstm_fusion", **TINY, branches="lstm", hidden=6)
    assert alone.fusion is None
    assert not any(name.startswith("fusion") for name, _ in alone.named_parameters())
    assert any(name.startswith("fusion") for name, _ in fused.named_parameters())
    # the head reads the recurrent branch's 6 channels directly
    assert alone.embedding.weight.shape == (alone.config.parts, 6, 12)


def test_unknown_net_and_options_are_rejected_with_names():
    with pytest.raises(ValueError, match="unknown net 'gaitset'"):
        create_model("gaitset")
    # an option of another net is an error that names the net it was given to
    with pytest.raises(ValueError, match=r"net 'baseline' has no option 'temporal'"):
        build_config("baseline", temporal="lstm")
    with pytest.raises(ValueError, match=r"net 'convlstm_fusion': bad option value: branches"):
        build_config("convlstm_fusion", branches="max")


def test_every_built_in_net_is_its_own_file():
    assert net_names() == ["baseline", "convlstm_fusion"]
    for name in net_names():
        assert resolve_net(name).__module__ == f"models.nets.{name}"


def test_parts_that_do_not_divide_the_feature_map_are_named():
    # a stride-2 stem leaves 8 rows at the contract's 64-pixel height: 16 parts cannot be cut
    model = create_model("baseline", channels=[4, 8, 8, 8], stem_stride=2, parts=16)
    with pytest.raises(ValueError, match="8 rows high does not split into 16 equal parts"):
        model(torch.rand(1, 3, 64, 44))
