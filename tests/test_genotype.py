"""Genotypes as data (srnas.genotype): canonical JSON, one-line form, hash, validation."""

import json
from importlib import resources

import pytest

from srnas.errors import SrnasError
from srnas.genotype import SCHEMA_VERSION, Genotype, packaged
from srnas.spaces.dlsr import dlsr_genotype

PAPER_STR = "dlsr:conv_1x1,sep_conv_7x7,sep_conv_5x5|3<1,2;4<2,3;5<2,4;6<4,5"
PARA_STR = "dlsr:sep_conv_3x3,sep_conv_5x5,sep_conv_5x5|3<2,1;4<3,2;5<4,3;6<1,3"
# Golden: changes only if the canonical JSON form changes (which renames every architecture).
PAPER_HASH = "3cf40197fc"


def paper():
    return dlsr_genotype(["conv_1x1", "sep_conv_7x7", "sep_conv_5x5"],
                         [(1, 2), (2, 3), (2, 4), (4, 5)])


def test_paper_genotype_string_and_hash():
    g = paper()
    assert str(g) == PAPER_STR
    assert g.short_hash == PAPER_HASH
    assert packaged("dlsr") == g


def test_packaged_files_are_canonical():
    folder = resources.files("srnas") / "genotypes"
    for name, text in [("dlsr", PAPER_STR), ("dlsr_para_loss", PARA_STR)]:
        g = packaged(name)
        assert str(g) == text
        assert (folder / f"{name}.json").read_text(encoding="utf-8") == g.to_json()
    with pytest.raises(SrnasError, match="dlsr_para_loss"):
        packaged("nope")


@pytest.mark.parametrize("text", [PAPER_STR, PARA_STR,
                                  "dlsr:dil_conv_5x5,conv_7x7,sep_conv_3x3|chain"])
def test_round_trips(text, tmp_path):
    g = Genotype.parse(text)
    assert str(g) == text
    assert Genotype.from_json(g.to_json()) == g
    path = g.save(tmp_path / "sub" / "g.json")
    assert Genotype.load(path) == g
    assert [p.name for p in path.parent.iterdir()] == ["g.json"]  # no temp file left
    data = json.loads(path.read_text())
    assert list(data) == sorted(data)
    assert data["schema_version"] == SCHEMA_VERSION and data["search_space"] == "dlsr"


def test_hash_stable_and_distinct():
    a, b = paper(), Genotype.parse(PAPER_STR)
    assert a.short_hash == b.short_hash and hash(a) == hash(b) and len({a, b}) == 1
    others = [Genotype.parse(PARA_STR),
              Genotype.parse("dlsr:conv_1x1,sep_conv_7x7,sep_conv_5x5|chain"),
              Genotype.parse("dlsr:conv_1x1,sep_conv_7x7,sep_conv_5x5|3<2,1;4<2,3;5<2,4;6<4,5")]
    hashes = {g.short_hash for g in [a, *others]}
    assert len(hashes) == 4 and all(len(h) == 10 for h in hashes)


def test_tuples_and_lists_are_the_same_genotype():
    g = Genotype("dlsr", {"ops": ("conv_1x1", "sep_conv_7x7", "sep_conv_5x5"),
                          "wiring": ((1, 2), (2, 3), (2, 4), (4, 5))})
    assert g == paper() and g.short_hash == PAPER_HASH


def _write(tmp_path, obj, raw=None):
    path = tmp_path / "bad.json"
    path.write_text(raw if raw is not None else json.dumps(obj))
    return path


def _doc(**changes):
    doc = paper().to_dict()
    for key, value in changes.items():
        if key.startswith("g_"):
            doc["genotype"][key[2:]] = value
        else:
            doc[key] = value
    return doc


BAD = {
    "bad json": (None, "{not json", "not valid JSON"),
    "unknown op": (_doc(g_ops=["conv_1x1", "sep_conv_9x9", "sep_conv_5x5"]), None,
                   r"genotype\.ops\[1\].*sep_conv_9x9.*known: conv_1x1"),
    "two ops": (_doc(g_ops=["conv_1x1", "sep_conv_7x7"]), None, r"genotype\.ops.*3 op names"),
    "not a predecessor": (_doc(g_wiring=[[1, 2], [2, 3], [2, 5], [4, 5]]), None,
                          r"genotype\.wiring\[2\].*cell 5.*5 is not a predecessor"),
    "index out of range": (_doc(g_wiring=[[0, 2], [2, 3], [2, 4], [4, 5]]), None,
                           r"genotype\.wiring\[0\].*0 is not a predecessor"),
    "same input twice": (_doc(g_wiring=[[1, 2], [3, 3], [2, 4], [4, 5]]), None,
                         r"genotype\.wiring\[1\].*must differ"),
    "three links": (_doc(g_wiring=[[1, 2], [2, 3], [2, 4]]), None, r"genotype\.wiring"),
    "wiring not ints": (_doc(g_wiring=[[1, "2"], [2, 3], [2, 4], [4, 5]]), None,
                        r"genotype\.wiring\[0\]"),
    "wrong version": (_doc(schema_version=2), None, r"schema_version.*2 is not supported"),
    "unknown space": (_doc(search_space="nasnet"), None,
                      r"search_space.*unknown search space 'nasnet'.*dlsr"),
    "missing key": ({"schema_version": 1, "search_space": "dlsr"}, None, r"genotype: missing key"),
    "missing payload key": ({"genotype": {"wiring": "chain"}, "schema_version": 1,
                             "search_space": "dlsr"}, None,
                            r"genotype\.ops: missing key"),
    "extra payload key": (_doc(g_cells=6), None, r"genotype\.cells: unknown key"),
    "extra key": (_doc(name="x"), None, r"name: unknown key"),
    "not an object": ([1, 2], None, "expected a JSON object"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_files_name_file_and_field(case, tmp_path):
    obj, raw, pattern = BAD[case]
    path = _write(tmp_path, obj, raw)
    with pytest.raises(SrnasError, match=pattern) as info:
        Genotype.load(path)
    assert str(path) in str(info.value)


def test_missing_file():
    with pytest.raises(SrnasError, match="not found"):
        Genotype.load("/nonexistent/genotype.json")


@pytest.mark.parametrize("text,pattern", [
    ("conv_1x1,sep_conv_7x7,sep_conv_5x5|chain", "search space"),
    ("hinas_x:conv_1x1|chain", "unknown search space"),
    ("dlsr:conv_1x1,sep_conv_7x7,sep_conv_5x5", "wiring"),
    ("dlsr:conv_1x1,sep_conv_7x7,bogus|chain", r"ops\[2\].*bogus"),
    ("dlsr:conv_1x1,sep_conv_7x7,sep_conv_5x5|3<1,2;4<2,3;6<2,4;5<4,5", "in order"),
    ("dlsr:conv_1x1,sep_conv_7x7,sep_conv_5x5|3<1,2;4<2,3;5<2,4;6<4,6", "not a predecessor"),
    ("dlsr:conv_1x1,sep_conv_7x7,sep_conv_5x5|3<1;4<2,3;5<2,4;6<4,5", "3<1"),
])
def test_malformed_strings(text, pattern):
    with pytest.raises(SrnasError, match=pattern):
        Genotype.parse(text)


def test_constructor_validates():
    with pytest.raises(SrnasError, match=r"genotype\.ops\[0\]"):
        dlsr_genotype(["conv_9x9", "conv_1x1", "conv_1x1"])
    with pytest.raises(SrnasError, match="schema_version"):
        Genotype("dlsr", paper().payload, version=0)
