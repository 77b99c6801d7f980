import subprocess
import sys

import pytest
import yaml

from srnas.errors import SrnasError
from srnas.params import defaults_tree, load_params


def test_shipped_params_equal_the_schema_defaults(root):
    # params.yaml is the documented default; the schema must not drift from it.
    shipped = yaml.safe_load((root / "params.yaml").read_text())
    assert load_params(root / "params.yaml").tree == load_params(None).tree
    assert shipped == defaults_tree()


def test_overrides_parse_yaml_values(root):
    p = load_params(root / "params.yaml", ["data.scales=[2,4]", "budget=paper", "seed=3"])
    assert p.get("data.scales") == [2, 4]
    assert p.get("budget") == "paper"
    assert p.get("seed") == 3


@pytest.mark.parametrize("override, message", [
    ("budget=fast", "budget = 'fast' is not one of quick, paper"),
    ("data.scales=[5]", "data.scales = 5 is not one of"),
    ("data.sourc=sample", "unknown key 'data.sourc'"),
    ("seed=-1", "seed = -1 must be >= 0"),
    ("seed=abc", "seed must be int"),
    ("data.min_size=true", "data.min_size must be int"),
    ("evaluate.grey=rgb", "evaluate.grey = 'rgb' is not one of y, replicate"),
    ("nope", "must look like key.path=value"),
])
def test_bad_values_name_the_key(root, override, message):
    with pytest.raises(SrnasError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_params(root / "params.yaml", [override])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(SrnasError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "p.yaml"
    bad.write_text("budget: [unclosed\n")
    with pytest.raises(SrnasError, match="not valid YAML"):
        load_params(bad)


def test_restricted_params_refuse_undeclared_keys(root):
    p = load_params(root / "params.yaml").restrict(["data.scales"])
    assert p.get("data.scales") == [2, 3, 4]
    with pytest.raises(RuntimeError, match="does not declare"):
        p.get("budget")


def test_stage_script_reports_bad_param_without_traceback(root, tmp_path):
    out = tmp_path / "x.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.evaluate", "--params", "params.yaml", "--set", "evaluate.grey=rgb",
         "--model", "bicubic", "--scale", "2", "--benchmark-root", str(tmp_path), "--out", str(out)],
        cwd=root, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "error: params: evaluate.grey = 'rgb'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
