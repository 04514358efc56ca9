"""torch-tensorrt argument building per version (no torch-tensorrt or GPU needed: pure Python).

What each branch must give was read in pytorch/TensorRT at the release tags:
* py/torch_tensorrt/dynamo/_defaults.py: USE_EXPLICIT_TYPING False at v2.9.0, True from v2.10.0;
  ENABLE_AUTOCAST / AUTOCAST_LOW_PRECISION_TYPE appear at v2.10.0.
* py/torch_tensorrt/dynamo/_compiler.py v2.10.0: ``if use_explicit_typing: ... raise AssertionError(...
  enabled_precisions should not be used when use_explicit_typing=True``; v2.13.0: ``compile`` has no
  ``enabled_precisions`` parameter (it would fall into ``**kwargs``).
* py/torch_tensorrt/_compile.py: ``save(..., retrace: bool = False`` up to v2.9.0, ``retrace: bool = True`` from
  v2.10.0 (re-export with the example tensors); ``dynamic_shapes`` and Input-based inference from v2.11.0.
"""

import pytest
import torch

from dramnet_edge.export.formats import format_for_path, get_format, validate_request
from dramnet_edge.export.torch_tensorrt import (_save_pt2, _torch_values, compile_options, parse_version,
                                                save_options)


@pytest.mark.parametrize("text, expected", [("2.13.0+cu130", (2, 13)), ("2.10.0.dev20250101", (2, 10)),
                                            ("2.9.0", (2, 9)), ("2.12.0rc3", (2, 12))])
def test_parse_version(text, expected):
    assert parse_version(text) == expected


def test_fp16_before_2_10_uses_enabled_precisions():
    opts = compile_options("fp16", (2, 9))
    assert opts == {"enabled_precisions": ["float32", "float16"]}
    assert _torch_values(opts)["enabled_precisions"] == {torch.float32, torch.float16}
    assert compile_options("fp32", (2, 9)) == {"enabled_precisions": ["float32"]}


@pytest.mark.parametrize("version", [(2, 10), (2, 12), (2, 13), (3, 0)])
def test_fp16_from_2_10_uses_autocast_and_never_enabled_precisions(version):
    opts = compile_options("fp16", version)
    assert "enabled_precisions" not in opts  # asserts on 2.10-2.12, silently ignored on 2.13
    assert opts == {"enable_autocast": True, "autocast_low_precision_type": "float16"}
    assert _torch_values(opts)["autocast_low_precision_type"] is torch.float16
    assert compile_options("fp32", version) == {}


def test_compile_options_reject_int8():
    with pytest.raises(ValueError, match="fp32 or fp16, got 'int8'"):
        compile_options("int8", (2, 13))


def test_save_keeps_the_dynamic_batch_in_both_branches():
    specs, examples = ["<Input min 1 opt 8 max 16>"], ["<tensor batch 8>"]
    # 2.10: retrace=True would re-export with the batch-8 tensors and pin the batch
    assert save_options((2, 10), specs, examples, dynamic=True) == {"retrace": False}
    assert save_options((2, 9), specs, examples, dynamic=True) == {"retrace": False}
    # 2.11+: the Input specs, from which save() infers dynamic_shapes
    assert save_options((2, 11), specs, examples, dynamic=True) == {"retrace": True, "arg_inputs": specs}
    assert save_options((2, 13), specs, examples, dynamic=True) == {"retrace": True, "arg_inputs": specs}
    # static batch: plain example tensors are right everywhere
    assert save_options((2, 10), specs, examples, dynamic=False) == {"retrace": True, "arg_inputs": examples}
    assert save_options((2, 13), specs, examples, dynamic=False) == {"retrace": True, "arg_inputs": examples}


def test_programs_are_pt2_archives(tmp_path):
    assert get_format("torch-tensorrt").suffix == ".pt2"
    assert format_for_path("m.decoder_full.pt2").name == "torch-tensorrt"
    assert validate_request("torch-tensorrt", "fp16", output="m.pt2").name == "torch-tensorrt"
    with pytest.raises(ValueError, match=r"does not end in \.pt2"):
        validate_request("torch-tensorrt", "fp16", output="m.ep")
    seen = []
    _save_pt2(tmp_path / "m.pt2", lambda tmp: (seen.append(tmp.name), tmp.write_bytes(b"x")))
    assert seen == ["m.pt2"]  # the staged file keeps the suffix torch.export.save checks
    assert (tmp_path / "m.pt2").read_bytes() == b"x" and sorted(p.name for p in tmp_path.iterdir()) == ["m.pt2"]


def test_torch_export_save_accepts_the_staged_name(tmp_path):
    import io
    import logging

    class AddOne(torch.nn.Module):
        def forward(self, x):
            return x + 1

    # torch/export/pt2_archive/_package.py logs "Expect archive file to be a file ending in .pt2" on its own logger
    log, buf = logging.getLogger("torch.export.pt2_archive._package"), io.StringIO()
    handler = logging.StreamHandler(buf)
    log.addHandler(handler)
    try:
        ep = torch.export.export(AddOne(), (torch.zeros(2),))
        torch.export.save(ep, str(tmp_path / "old.ep"))
        assert "ending in .pt2" in buf.getvalue()
        buf.seek(0), buf.truncate()
        _save_pt2(tmp_path / "m.pt2", lambda tmp: torch.export.save(ep, str(tmp)))
        assert buf.getvalue() == ""
    finally:
        log.removeHandler(handler)
    assert torch.export.load(str(tmp_path / "m.pt2")).module()(torch.zeros(2)).tolist() == [1.0, 1.0]
