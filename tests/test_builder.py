"""The dict graph builder: valid specs build; every malformed spec raises SpecError naming key and link."""

import json

import keras
import numpy as np
import pytest

import visionfw
from visionfw.errors import SpecError, VisionFWError


def vdsr_like(B=3, channels=1):
    return {
        "name": "VDSR",
        "inputs": [(None, None, channels)],
        "defaults": {"Conv2D": {"filters": 8, "kernel_size": 3, "padding": "same"}},
        "block": [(i, i + 1) for i in range(B)] + [(B, B + 1)],
        "block_sub": ["conv_relu"] * B + ["conv_out"],
        "merge": [(0, B + 1, B + 2)],
        "merge_sub": ["Add"],
    }


def simple():
    return {
        "name": "s",
        "convo": [(0, 1), (1, 2)],
        "convo_par": [{"filters": 4, "kernel_size": 3}, {"filters": 3}],
        "defaults": {"Conv2D": {"kernel_size": 1, "padding": "same"}},
    }


def test_issue_vdsr_example_builds_and_is_residual():
    model = visionfw.build_model(vdsr_like())
    assert [type(ly).__name__ for ly in model.layers].count("Conv2D") == 4
    # conv_out goes back to the input channels, and the merge adds the input.
    assert model.output_shape == (None, None, None, 1)
    for w in model.weights:
        w.assign(np.zeros(w.shape, np.float32))
    x = np.random.default_rng(0).random((1, 5, 7, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(model(x)), x)


def test_defaults_apply_and_par_overrides():
    model = visionfw.build_model(simple())
    convs = [ly for ly in model.layers if isinstance(ly, keras.layers.Conv2D)]
    assert convs[0].kernel_size == (3, 3) and convs[1].kernel_size == (1, 1)
    assert convs[0].padding == "same"


def test_defaults_reach_inside_function_blocks():
    model = visionfw.build_model(vdsr_like())
    assert all(ly.filters == 8 for ly in model.layers if isinstance(ly, keras.layers.Conv2D) and ly.filters != 1)


def test_outputs_list_and_multiple_inputs():
    spec = {
        "name": "two",
        "inputs": [(None, None, 3), (None, None, 3)],
        "merge": [(0, 1, 2)],
        "merge_sub": ["Concatenate"],
        "convo": [(2, 3), (2, 4)],
        "convo_par": [{"filters": 2, "kernel_size": 1}, {"filters": 1, "kernel_size": 1}],
        "outputs": [3, 4],
    }
    model = visionfw.build_model(spec)
    a = np.ones((1, 4, 4, 3), np.float32)
    out = model([a, a])
    assert [tuple(o.shape) for o in out] == [(1, 4, 4, 2), (1, 4, 4, 1)]


def test_dict_spec_block_registered_and_local():
    inner = {
        "name": "pair",
        "convo": [(0, 1), (1, 2)],
        "defaults": {"Conv2D": {"filters": 3, "kernel_size": 3, "padding": "same"}},
        "convo_par": [{"activation": "relu"}, {}],
        "merge": [(0, 2, 3)],
        "merge_sub": ["Add"],
    }
    visionfw.register_block("test_pair", spec=inner)
    spec = {
        "name": "outer",
        "block": [(0, 1), (1, 2)],
        "block_sub": ["test_pair", "local_pair"],
        "block_par": [{}, {"Conv2D": {"kernel_size": 1}}],
        "blocks": {"local_pair": inner},
    }
    model = visionfw.build_model(spec)
    ks = [ly.kernel_size for ly in model.layers if isinstance(ly, keras.layers.Conv2D)]
    assert ks == [(3, 3), (3, 3), (1, 1), (1, 1)]
    assert model.count_params() == 2 * 84 + 2 * 12  # two 3x3 convs 3->3, then two 1x1


def test_activation_shorthand_and_quoted_string_hint():
    spec = {
        "name": "a",
        "convo": [(0, 1)],
        "convo_par": [{"filters": 3, "kernel_size": 1}],
        "actvn": [(1, 2)],
        "actvn_sub": ["relu"],
    }
    model = visionfw.build_model(spec)
    x = -np.ones((1, 2, 2, 3), np.float32)
    assert np.asarray(model(x)).min() >= 0


def test_replicate_padding_builds_edge_conv():
    spec = {"name": "r", "convo": [(0, 1)], "convo_par": [{"filters": 1, "kernel_size": 3, "padding": "replicate"}]}
    model = visionfw.build_model(spec)
    assert any(type(ly).__name__ == "EdgePadConv2D" for ly in model.layers)
    assert model(np.ones((1, 5, 5, 3), np.float32)).shape == (1, 5, 5, 1)


def test_json_round_trip():
    spec = vdsr_like()
    text = visionfw.spec_to_json(spec)
    back = visionfw.spec_from_json(text)
    assert back == spec
    assert json.loads(text)["block"][0] == [0, 1]


def test_describe_and_dot():
    text = visionfw.describe(vdsr_like(), print_fn=None)
    assert "conv_relu" in text and "parameters" in text
    total = visionfw.build_model(vdsr_like()).count_params()
    assert f"{total:,}" in text
    dot = visionfw.spec_to_dot(vdsr_like())
    assert dot.startswith('digraph "VDSR"') and "n0 -> n1;" in dot and "n4 -> n5;" in dot


def test_keras_shape_error_names_link():
    spec = {
        "name": "bad_shapes",
        "convo": [(0, 1), (0, 2)],
        "convo_par": [{"filters": 4, "kernel_size": 1}, {"filters": 5, "kernel_size": 1}],
        "merge": [(1, 2, 3)],
        "merge_sub": ["Add"],
    }
    with pytest.raises(SpecError, match=r"key 'merge', link 0"):
        visionfw.build_model(spec)


def _bad(**changes):
    spec = simple()
    for k, v in changes.items():
        if v is _DEL:
            spec.pop(k)
        else:
            spec[k] = v
    return spec


_DEL = object()

# (id, spec, regex the message must match). Each names the key and (where there is one) the link index.
MALFORMED = [
    ("not_a_dict", [("convo", (0, 1))], r"must be a dict"),
    ("no_name", _bad(name=_DEL), r"key 'name'"),
    ("name_not_str", _bad(name=3), r"key 'name'"),
    ("unknown_key", _bad(convo_pars=[]), r"key 'convo_pars'.*Did you mean 'convo_par'"),
    ("unknown_type_code", _bad(convv=[(0, 1)]), r"key 'convv'.*Did you mean 'convo'"),
    ("links_not_list", _bad(convo=(0, 1)) if False else _bad(convo="0,1"), r"key 'convo'.*list of link tuples"),
    ("link_not_tuple", _bad(convo=[(0, 1), 2]), r"key 'convo', link 1"),
    ("link_non_int", _bad(convo=[(0, 1), (1, "2")]), r"key 'convo', link 1.*integer"),
    ("link_bool", _bad(convo=[(0, 1), (True, 2)]), r"key 'convo', link 1"),
    ("link_too_short", _bad(convo=[(0, 1), (2,)]), r"key 'convo', link 1.*at least"),
    ("negative_node", _bad(convo=[(0, 1), (-1, 2)]), r"key 'convo', link 1.*negative"),
    ("sub_length", _bad(convo_sub=["Conv2D"]), r"key 'convo_sub'.*1 names for 2 links"),
    ("par_too_long", _bad(convo_par=[{}, {}, {}]), r"key 'convo_par'.*3 entries for 2 links"),
    ("par_not_dict", _bad(convo_par=[{"filters": 4}, "filters=3"]), r"key 'convo_par', link 1"),
    ("unknown_class", _bad(convo_sub=["Conv2D", "Conv2d"]), r"key 'convo_sub', link 1.*unknown class 'Conv2d'.*Conv2D"),
    ("class_wrong_code", _bad(convo_sub=["Conv2D", "Add"]), r"key 'convo_sub', link 1.*not a 'convo' class.*'merge'"),
    (
        "unknown_kwarg",
        _bad(convo_par=[{"filters": 4, "kernal_size": 3}, {"filters": 3}]),
        r"key 'convo_par', link 0.*'kernal_size'.*kernel_size",
    ),
    (
        "quoted_string",
        _bad(convo_par=[{"filters": 4, "padding": "'same'"}, {"filters": 3}]),
        r"key 'convo_par', link 0.*repr",
    ),
    ("node_twice", _bad(convo=[(0, 1), (0, 1)]), r"key 'convo', link 1.*node 1 is created twice"),
    ("creates_input_node", _bad(convo=[(0, 0), (0, 1)]), r"key 'convo', link 0.*input of the model"),
    ("never_created", _bad(convo=[(0, 1), (3, 2)]), r"key 'convo', link 1.*node 3 is never created"),
    ("gap_in_nodes", _bad(convo=[(0, 1), (1, 3)]), r"node\(s\) \[2\] are never created"),
    ("cycle", {"name": "c", "convo": [(0, 1), (2, 3)], "merge": [(1, 3, 2)], "merge_sub": ["Add"]}, r"cycle"),
    (
        "forward_reference",
        {"name": "f", "convo": [(0, 2), (0, 1)], "merge": [(1, 2, 3)], "merge_sub": ["Add"], "convo_par": [{}, {}]}
        if False
        else {"name": "f", "convo": [(2, 1), (0, 2)], "convo_par": [{"filters": 1}, {"filters": 1}]},
        r"key 'convo', link 0.*created after",
    ),
    (
        "dangling",
        {"name": "d", "convo": [(0, 1), (0, 2), (2, 3)], "convo_par": [{"filters": 1}] * 3},
        r"key 'convo', link 0.*node 1 reaches no output",
    ),
    (
        "merge_one_input",
        {"name": "m", "convo": [(0, 1)], "convo_par": [{"filters": 1}], "merge": [(1, 2)], "merge_sub": ["Add"]},
        r"key 'merge', link 0.*at least two inputs",
    ),
    ("single_input_layer_two_inputs", _bad(convo=[(0, 1), (0, 1, 2)]), r"key 'convo', link 1.*takes one input"),
    (
        "unknown_block",
        {"name": "b", "block": [(0, 1)], "block_sub": ["conv_rleu"]},
        r"key 'block_sub', link 0.*unknown block 'conv_rleu'.*conv_relu",
    ),
    (
        "block_bad_param",
        {"name": "b", "block": [(0, 1)], "block_sub": ["conv_relu"], "block_par": [{"filter": 3}]},
        r"key 'block_par', link 0.*'filter'.*filters",
    ),
    (
        "block_arity",
        {"name": "b", "block": [(0, 1), (0, 1, 2)], "block_sub": ["conv_relu", "conv_relu"]},
        r"key 'block', link 1.*takes 1 input",
    ),
    ("missing_sub_for_block", {"name": "b", "block": [(0, 1)]}, r"key 'block_sub'.*missing"),
    ("sub_without_links", _bad(merge_sub=["Add"]), r"key 'merge_sub'.*no link list 'merge'"),
    ("outputs_missing_node", _bad(outputs=[7]), r"key 'outputs'.*node 7 does not exist"),
    ("outputs_not_list", _bad(outputs="2"), r"key 'outputs'"),
    ("bad_inputs", _bad(inputs=[(None, None, "3")]), r"key 'inputs', input 0"),
    ("empty_inputs", _bad(inputs=[]), r"key 'inputs'"),
    (
        "unused_input",
        {"name": "u", "inputs": [(None, None, 3), (None, None, 3)], "convo": [(0, 2)]},
        r"input node\(s\) \[1\] reach no output",
    ),
    ("defaults_unknown_class", _bad(defaults={"Conv2d": {"filters": 3}}), r"key 'defaults'.*'Conv2d'.*Conv2D"),
    ("defaults_unknown_kwarg", _bad(defaults={"Conv2D": {"kernal": 3}}), r"key 'defaults', class 'Conv2D'"),
    ("no_links", {"name": "empty"}, r"has no links"),
    (
        "nested_block_error",
        {"name": "n", "block": [(0, 1)], "block_sub": ["inner"], "blocks": {"inner": {"convo": [(0, 1), (0, 1)]}}},
        r"block 'inner'.*key 'convo', link 1.*created twice",
    ),
    (
        "dict_block_bad_par",
        {
            "name": "n",
            "block": [(0, 1)],
            "block_sub": ["inner"],
            "block_par": [{"Conv2d": {}}],
            "blocks": {"inner": {"convo": [(0, 1)], "convo_par": [{"filters": 1}]}},
        },
        r"key 'block_par', link 0.*'Conv2d'",
    ),
    ("self_loop", _bad(convo=[(0, 1), (2, 2)]), r"cycle"),
]


@pytest.mark.parametrize("spec,pattern", [(s, p) for _, s, p in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_spec_raises_spec_error(spec, pattern):
    with pytest.raises(SpecError, match=pattern) as info:
        visionfw.build_model(spec)
    assert isinstance(info.value, VisionFWError)
    assert not isinstance(info.value, (KeyError, IndexError))


def test_at_least_25_malformed_cases():
    assert len(MALFORMED) >= 25


def test_no_globals_injected_and_no_eval():
    """A string value is passed as is: nothing in a spec is evaluated as code."""
    spec = {"name": "e", "actvn": [(0, 1)], "actvn_par": [{"activation": "__import__('os').getcwd()"}]}
    with pytest.raises(SpecError, match="key 'actvn', link 0"):
        visionfw.build_model(spec)
