"""models.registry: nets found by built-in name, by import path and by entry point."""

from __future__ import annotations

import sys
import textwrap

import pytest

from models.registry import complete_options, create_model, net_names, resolve_net

USER_NET = '''
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class WidthConfig:
    width: int = 4
    num_classes: int = 2


class MeanNet(nn.Module):
    """In sils [n, s, 64, 44]. embed: [n, width, 1]."""

    config_class = WidthConfig

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.project = nn.Linear(64 * 44, config.width)

    def embed(self, sils):
        return self.project(sils.mean(1).flatten(1))[:, :, None]

    def forward(self, sils):
        return {"embeddings": self.embed(sils)}
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of the user's own, outside the package, importable as ``user_nets_x``."""
    (tmp_path / "user_nets_x.py").write_text(USER_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("user_nets_x", None)


def test_a_net_from_the_users_module_by_import_path(user_module):
    net = create_model("user_nets_x:MeanNet", width=3)
    assert net.config.width == 3
    assert complete_options("user_nets_x:MeanNet", {}, num_classes=9, unused=1) == {
        "width": 4,
        "num_classes": 9,
    }
    with pytest.raises(ValueError, match="net 'user_nets_x:MeanNet' has no option 'parts'"):
        create_model("user_nets_x:MeanNet", parts=8)


def test_a_net_from_an_installed_entry_point(user_module):
    dist = user_module / "user_nets_x-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: user-nets-x\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [gaitlab.nets]
            mean_net = user_nets_x:MeanNet
            """
        )
    )
    assert "mean_net" in net_names()
    assert resolve_net("mean_net").__name__ == "MeanNet"
    assert create_model("mean_net", width=2).config.width == 2


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("no_such_module_x:Net", "cannot import"),
        ("user_nets_x:Missing", "has no 'Missing'"),
        ("user_nets_x:", "import path"),
        ("torch:Tensor", "dataclass `config_class`"),
    ],
)
def test_bad_import_paths_say_what_is_wrong(user_module, name, complaint):
    with pytest.raises(ValueError, match=complaint):
        resolve_net(name)
