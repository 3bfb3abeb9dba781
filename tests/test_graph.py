"""The graph writer, word link types with their five-letter aliases, and one validation per build."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from conftest import count_calls

import visionfw
from visionfw.errors import SpecError
from visionfw.zoo import parts, validation
from visionfw.zoo.graph import Graph


def test_graph_writes_the_dict_a_person_would():
    g = Graph("tiny", inputs=[(None, None, 1)], defaults={"Conv2D": {"kernel_size": 3, "padding": "same"}})
    x = g.conv(g.input, 8, activation="relu")
    x = g.block("conv_out", x)
    y = g.add(g.input, x)
    assert (int(x), int(y)) == (2, 3)
    assert g.spec() == {
        "name": "tiny",
        "inputs": [(None, None, 1)],
        "defaults": {"Conv2D": {"kernel_size": 3, "padding": "same"}},
        "conv": [(0, 1)],
        "conv_sub": ["Conv2D"],
        "conv_par": [{"filters": 8, "activation": "relu"}],
        "block": [(1, 2)],
        "block_sub": ["conv_out"],
        "block_par": [{}],
        "merge": [(0, 2, 3)],
        "merge_sub": ["Add"],
        "merge_par": [{}],
    }


def test_graph_outputs_and_json_round_trip():
    g = Graph("two_outputs", inputs=[(None, None, 3)])
    a = g.conv(g.input, 4, 1)
    b = g.act(a, "relu")
    g.output(b, a)
    spec = g.spec(meta={"note": "x"})
    assert spec["outputs"] == [2, 1] and spec["meta"] == {"note": "x"}
    assert visionfw.spec_from_json(visionfw.spec_to_json(spec)) == spec
    model = visionfw.build_model(spec)
    assert [tuple(t.shape) for t in model.outputs] == [(None, None, None, 4)] * 2


def test_graph_refuses_nodes_it_did_not_make():
    g, other = Graph("g"), Graph("other")
    with pytest.raises(SpecError, match=r"graph 'g': conv 'Conv2D' got 0, which is not a node of this graph"):
        g.conv(0, 4)
    with pytest.raises(SpecError, match=r"got Node\(0\), which is not a node of this graph"):
        g.conv(other.input, 4)
    with pytest.raises(SpecError, match="unknown link type 'convo'"):
        g.link("convo", "Conv2D", g.input)


def test_graph_spec_is_validated():
    g = Graph("bad")
    g.conv(g.input, 4, kernal_size=3)
    with pytest.raises(
        SpecError, match=r"Conv2D does not accept the keyword 'kernal_size'.*Did you mean 'kernel_size'"
    ):
        g.spec()


FIVE_LETTER = {
    "name": "five",
    "inputs": [(None, None, 3)],
    "defaults": {"Conv2D": {"filters": 8, "kernel_size": 3, "padding": "same"}},
    "convo": [(0, 1), (2, 3), (4, 5)],
    "convo_par": [{}, {}, {"filters": 12}],
    "aactv": [(1, 2)],
    "aactv_sub": ["PReLU"],
    "aactv_par": [{"shared_axes": [1, 2]}],
    "btnrm": [(3, 4)],
    "pslyr": [(5, 6)],
    "pslyr_par": [{"scale": 2}],
}
WORDS = {
    "name": "five",
    "inputs": [(None, None, 3)],
    "defaults": {"Conv2D": {"filters": 8, "kernel_size": 3, "padding": "same"}},
    "conv": [(0, 1), (2, 3), (4, 5)],
    "conv_par": [{}, {}, {"filters": 12}],
    "act": [(1, 2)],
    "act_sub": ["PReLU"],
    "act_par": [{"shared_axes": [1, 2]}],
    "norm": [(3, 4)],
    "shuffle": [(5, 6)],
    "shuffle_par": [{"scale": 2}],
}


def _seeded_output(spec):
    keras.utils.set_random_seed(7)
    model = visionfw.build_model(spec)
    x = np.random.default_rng(0).random((1, 9, 7, 3), dtype=np.float32)
    return model, np.asarray(model(x))


def test_five_letter_dict_and_words_build_the_same_model():
    m1, y1 = _seeded_output(FIVE_LETTER)
    m2, y2 = _seeded_output(WORDS)
    assert y1.shape == (1, 18, 14, 3)
    np.testing.assert_array_equal(y1, y2)
    assert [layer.name for layer in m1.layers] == [layer.name for layer in m2.layers]
    assert "conv0_n1" in [layer.name for layer in m1.layers]  # layers are named by the canonical word


def test_a_type_under_both_names_is_an_error():
    spec = dict(WORDS, convo=[(6, 7)])
    with pytest.raises(SpecError, match=r"keys 'conv' and 'convo' both hold 'conv' links"):
        visionfw.build_model(spec)


def test_errors_name_the_key_the_spec_wrote():
    spec = dict(FIVE_LETTER, pslyr_par=[{"scael": 2}])
    with pytest.raises(SpecError, match=r"key 'pslyr_par', link 0: PixelShuffle does not accept the keyword 'scael'"):
        visionfw.build_model(spec)


def test_one_validation_per_build(monkeypatch):
    calls = count_calls(monkeypatch, {"links": (validation, "collect_links")})
    visionfw.get_model("edsr_baseline", scale=2)
    assert calls["links"] == 1
    # a registered dict block used three times is parsed once
    parts.register_block(
        "tiny_dict_block",
        spec={"name": "tiny_dict_block", "conv": [(0, 1)], "conv_par": [{"filters": 3, "kernel_size": 1}]},
    )
    g = Graph("uses_block")
    g.block("tiny_dict_block", g.block("tiny_dict_block", g.block("tiny_dict_block", g.input)))
    spec = g.spec(validate=False)
    calls["links"] = 0
    visionfw.build_model(spec)
    assert calls["links"] == 2  # the model and its block
    calls["links"] = 0
    visionfw.describe(spec, print_fn=None)
    assert calls["links"] == 2


def test_huge_node_number_is_a_quick_error_under_a_memory_limit():
    # The validator must not allocate per node index: 10**9 would need gigabytes.
    code = textwrap.dedent("""
        import resource, time
        import keras, visionfw
        visionfw.validate_spec({'name': 'warm', 'conv': [(0, 1)]})  # loads what validation needs
        from visionfw.errors import SpecError
        vm = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()
        limit = vm + 512 * 2**20   # half a GiB above what the process holds now
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        spec = {'name': 'huge', 'convo': [(0, 1), (1, 10**9)]}
        t = time.perf_counter()
        try:
            visionfw.validate_spec(spec)
        except SpecError as exc:
            print('ERR', round(time.perf_counter() - t, 3), exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("ERR")][0]
    seconds = float(line.split()[1])
    assert seconds < 1.0
    assert "node(s) [2..999999999] are never created" in line


def test_edge_pad_conv_with_stride_declares_its_real_shape():
    inp = keras.Input((16, 16, 3))
    layer = parts.make_layer("Conv2D", filters=4, kernel_size=3, strides=2, padding="replicate")
    out = layer(inp)
    assert tuple(out.shape) == (None, 8, 8, 4)
    model = keras.Model(inp, out)
    y = model(np.zeros((1, 16, 16, 3), np.float32))
    assert tuple(y.shape) == (1, 8, 8, 4)
    assert layer.compute_output_shape((None, 15, 9, 3)) == (None, 8, 5, 4)


def _recursive(share):
    """x -> conv -> (resblock, + head) x 3, the resblock's weights shared when ``share``."""
    g = Graph(
        "recursive", inputs=[(None, None, 3)], defaults={"Conv2D": {"filters": 4, "kernel_size": 3, "padding": "same"}}
    )
    head = g.conv(g.input, 4)
    x, first = head, None
    for _ in range(3):
        x = g.block("resblock", x, share=first if share else None)
        first = first if first is not None else x
        x = g.add(x, head)
    g.conv(x, 3)
    return g.spec()


def test_shared_block_is_one_set_of_weights_trained_by_every_use(tmp_path):
    shared, plain = visionfw.build_model(_recursive(True)), visionfw.build_model(_recursive(False))
    one_block = 2 * (3 * 3 * 4 * 4 + 4)
    assert plain.count_params() - shared.count_params() == 2 * one_block
    assert visionfw.spec_from_json(visionfw.spec_to_json(_recursive(True))) == _recursive(True)
    # the same weights in the unshared model: outputs agree, and the shared gradient is the sum
    # of the three copies' gradients (every use contributes)
    head_w, block_w, tail_w = shared.weights[:2], shared.weights[2:6], shared.weights[6:]
    plain.set_weights([w.numpy() for w in head_w] + [w.numpy() for w in block_w] * 3 + [w.numpy() for w in tail_w])
    x = np.random.default_rng(0).random((2, 9, 11, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(shared(x)), np.asarray(plain(x)), rtol=1e-5, atol=1e-6)
    import tensorflow as tf

    def grads(model):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x) ** 2)
        return [np.asarray(g) for g in tape.gradient(loss, model.trainable_weights)]

    g_shared, g_plain = grads(shared), grads(plain)
    kernel_sum = g_plain[2] + g_plain[6] + g_plain[10]  # the first conv kernel of each copy
    np.testing.assert_allclose(g_shared[2], kernel_sum, rtol=1e-4, atol=1e-5)
    # saved and loaded, still shared
    path = tmp_path / "shared.keras"
    shared.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(shared(x)))
    assert loaded.count_params() == shared.count_params()


def test_shared_layer_link():
    g = Graph("shared_conv", inputs=[(None, None, 2)])
    a = g.conv(g.input, 2, 3, padding="same", use_bias=False)
    b = g.conv(a, share=a)
    spec = g.spec()
    assert spec["conv_par"][1] == {"share": 1}
    model = visionfw.build_model(spec)
    assert model.count_params() == 3 * 3 * 2 * 2
    assert "shares node 1" in visionfw.describe(spec, print_fn=None)
    del b


@pytest.mark.parametrize(
    "links,pattern",
    [
        (
            {"conv": [(0, 1), (1, 2)], "conv_par": [{"filters": 3}, {"share": 1, "filters": 3}]},
            r"takes its parameters from that link; remove \['filters'\]",
        ),
        (
            {
                "conv": [(0, 1)],
                "conv_par": [{"filters": 3}],
                "act": [(1, 2)],
                "act_sub": ["PReLU"],
                "act_par": [{"share": 1}],
            },
            r"node 1 is a 'Conv2D' 'conv' link; only a 'PReLU' 'act' link",
        ),
        (
            {"conv": [(0, 1), (1, 2)], "conv_par": [{"share": 2}, {"filters": 3}]},
            r"share=2 must name a node created before node 1",
        ),
        (
            {"conv": [(0, 1), (1, 2), (2, 3)], "conv_par": [{"filters": 3}, {"share": 1}, {"share": 2}]},
            r"node 2 itself shares node 1; write share=1",
        ),
        (
            {"conv": [(0, 1), (1, 2)], "conv_par": [{"filters": 3}, {"share": "first"}]},
            r"share='first' must be the node number",
        ),
    ],
)
def test_sharing_mistakes_are_spec_errors(links, pattern):
    spec = dict({"name": "s", "defaults": {"Conv2D": {"kernel_size": 1}}}, **links)
    with pytest.raises(SpecError, match=pattern):
        visionfw.validate_spec(spec)
