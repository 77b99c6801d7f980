"""The op vocabulary (srnas.ops): DLSR's nine ops against DLSR Table 1 (FACTS.md §2)."""

import pytest
import torch
import torch.nn as nn

from srnas.complexity import count_macs, count_params
from srnas.errors import SrnasError
from srnas.ops import OPS

# DLSR Table 1: 50 channels, x2 task, 1280x720 HR = 640x360 LR input.
# (name, params in K as printed, Multi-Adds in G as printed)
TABLE1 = [
    ("conv_1x1", "2.5", "0.576"),
    ("conv_3x3", "22.5", "5.184"),
    ("conv_5x5", "62.5", "14.400"),
    ("conv_7x7", "122.5", "28.224"),
    ("sep_conv_3x3", "5.9", "1.359"),
    ("sep_conv_5x5", "7.5", "1.728"),
    ("sep_conv_7x7", "9.9", "2.281"),
    ("dil_conv_3x3", "2.95", "0.680"),
    ("dil_conv_5x5", "3.75", "0.864"),
]


def _decimals(printed: str) -> int:
    return len(printed.split(".")[1]) if "." in printed else 0


def test_dlsr_family_order_is_table1_order():
    assert OPS.get("dlsr").names == tuple(name for name, _, _ in TABLE1)


@pytest.mark.parametrize("name,params_k,madds_g", TABLE1)
def test_dlsr_table1(name, params_k, madds_g):
    op = OPS.get("dlsr").build(name, 50)
    params = count_params(op)
    assert round(params / 1e3, _decimals(params_k)) == float(params_k)
    macs = count_macs(op, (1, 50, 360, 640), meta=True)
    # within rounding of the last printed digit
    assert abs(macs / 1e9 - float(madds_g)) <= 0.5 * 10 ** -_decimals(madds_g) + 1e-12


@pytest.mark.parametrize("family", list(OPS))
def test_every_op_preserves_shape(family):
    fam = OPS.get(family)
    torch.manual_seed(0)
    x = torch.randn(2, 8, 13, 11)
    for name in fam.names:
        op = fam.build(name, 8)
        assert op(x).shape == x.shape, name


def test_dlsr_ops_have_no_bias_no_norm_and_keep_their_input():
    fam = OPS.get("dlsr")
    x = torch.randn(1, 6, 9, 9)
    keep = x.clone()
    for name in fam.names:
        op = fam.build(name, 6)
        for m in op.modules():
            assert not isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)), name
            if isinstance(m, nn.Conv2d):
                assert m.bias is None, name
        op(x)
        # the mixed residual block adds x back after the op: no in-place ReLU on it
        assert torch.equal(x, keep), name


def test_dilated_ops_are_depthwise_with_dilation_2():
    op = OPS.get("dlsr").build("dil_conv_5x5", 10)
    dw = op[1]
    assert dw.groups == 10 and dw.dilation == (2, 2) and dw.kernel_size == (5, 5)


def test_c_out_is_honoured():
    fam = OPS.get("dlsr")
    x = torch.randn(1, 6, 7, 7)
    for name in fam.names:
        assert fam.build(name, 6, 4)(x).shape == (1, 4, 7, 7), name


def test_unknown_names_list_the_known_ones():
    with pytest.raises(SrnasError, match="sep_conv_3x3"):
        OPS.get("dlsr").get("sep_conv_9x9")
    with pytest.raises(SrnasError, match="dlsr"):
        OPS.get("no_such_family")
    assert OPS.get("dlsr").index("sep_conv_7x7") == 6


@pytest.mark.parametrize("space", ["dlsr", "hnas"])
def test_residual_option_adds_a_bicubic_upsampling_of_the_input(space):
    """``residual=True`` (as HiNAS's framework, tests/test_hinas_space.py; an option of DLSR
    and HNAS that the strategy matrix uses) adds torch's bicubic x2 of the input and changes
    nothing else: with the same weights the two outputs differ by exactly that image (HNAS:
    it replaces the mean shift's add-back)."""
    import torch.nn.functional as F

    from srnas.genotype import packaged
    from srnas.ops import MeanShift
    from srnas.spaces import build_network

    genotype = {"dlsr": "dlsr", "hnas": "hnas_b"}[space]
    torch.manual_seed(0)
    on = build_network(packaged(genotype), 2, residual=True, **({"width": 4} if space == "hnas" else {}))
    off = build_network(packaged(genotype), 2, residual=False, **({"width": 4} if space == "hnas" else {}))
    off.load_state_dict(on.state_dict())
    x = torch.rand(1, 3, 16, 18) * 255
    with torch.no_grad():
        diff = on(x) - off(x)
    if space == "hnas":
        diff = diff + MeanShift(1.0).mean
    up = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    assert diff.shape == (1, 3, 32, 36)
    assert torch.allclose(diff, up, atol=1e-3), (diff - up).abs().max()
