"""DCGAN architectures: shapes at every supported size, the paper's initialisation, the layer table."""
import pytest
import torch
from torch import nn

from medgan_utils.nets import (
    SUPPORTED_SIZES, Discriminator, Generator, count_parameters, dcgan_layout, format_layer_table, layer_table,
    make_dcgan,
)


@pytest.mark.parametrize("size", SUPPORTED_SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_ranges(size, channels):
    G, D = make_dcgan(size, channels, latent_dim=16, base=8, seed=0)
    x = G(torch.randn(4, 16))
    assert x.shape == (4, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1  # tanh output
    assert G(torch.randn(4, 16, 1, 1)).shape == x.shape  # both latent layouts
    logits = D(x)
    assert logits.shape == (4,)


def test_discriminator_returns_logits_not_probabilities():
    assert not any(isinstance(m, nn.Sigmoid) for m in Discriminator(1, 28).modules())
    D = Discriminator(1, 28, base=8)
    with torch.no_grad():
        D.net[-1].bias.fill_(5.0)
    assert (D(torch.zeros(2, 1, 28, 28)) > 1).all()  # a probability could never exceed 1


def test_layouts():
    assert dcgan_layout(28) == (7, 2)
    assert dcgan_layout(32) == (4, 3)
    assert dcgan_layout(64) == (4, 4)
    assert dcgan_layout(128) == (4, 5)
    for bad in (30, 48, 100, 4):
        with pytest.raises(ValueError, match="4·2\\^k or 7·2\\^k"):
            dcgan_layout(bad)


def test_radford_recipe_and_init():
    G, D = make_dcgan(64, 1, seed=0)
    # strided convolutions only (no pooling), BN + ReLU / LeakyReLU(0.2), tanh output
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.Linear)) for m in [*G.modules(), *D.modules()])
    assert isinstance(G.net[-1], nn.Tanh)
    assert all(m.negative_slope == 0.2 for m in D.modules() if isinstance(m, nn.LeakyReLU))
    assert not isinstance(D.net[1], nn.BatchNorm2d)  # no BN on D's input layer
    convs = torch.cat([m.weight.flatten() for m in [*G.modules(), *D.modules()]
                       if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert abs(convs.mean().item()) < 1e-3 and abs(convs.std().item() - 0.02) < 1e-3
    bn = torch.cat([m.weight for m in G.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn.mean().item() - 1) < 5e-3 and abs(bn.std().item() - 0.02) < 5e-3
    assert all((m.bias == 0).all() for m in [*G.modules(), *D.modules()] if getattr(m, "bias", None) is not None)


def test_paper_sized_64px_network():
    G, D = make_dcgan(64, 3, seed=0)
    # the classic 64-px DCGAN (z=100, widths 512-256-128-64) has about 3.58 M + 2.77 M parameters
    assert count_parameters(G) == 3_576_707
    assert count_parameters(D) == 2_765_633


def test_seeded_construction_is_reproducible():
    a, _ = make_dcgan(28, 1, seed=3)
    b, _ = make_dcgan(28, 1, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_layer_table_rows_and_text():
    G = Generator(100, 1, 28)
    rows = layer_table(G, (2, 100))
    assert rows[0]["layer"] == "input"
    assert rows[-1]["output_shape"] == (1, 28, 28)
    assert [r["output_shape"][1:] for r in rows if r["type"] == "ConvTranspose2d"] == [(7, 7), (14, 14), (28, 28)]
    assert sum(r["params"] for r in rows) == count_parameters(G)
    D = Discriminator(1, 28)
    before = [b.clone() for b in D.buffers()]
    drows = layer_table(D, (2, 1, 28, 28))
    assert drows[-1]["output_shape"] == (1, 1, 1)
    assert all(torch.equal(a, b) for a, b in zip(before, D.buffers()))  # BN statistics untouched
    assert D.training
    text = format_layer_table(drows, title="D")
    assert "Conv2d" in text and f"{count_parameters(D):,}" in text


def test_discriminator_without_batch_norm():
    D = Discriminator(1, 32, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    assert D(torch.randn(3, 1, 32, 32)).shape == (3,)
