"""The one registry class behind models, blocks, layer classes and tasks."""

import pytest

from visionfw.errors import ConfigError, ModelNotFoundError, SpecError
from visionfw.registries import Registry, did_you_mean


def test_lookup_error_names_the_registry_the_name_a_close_name_and_the_fix():
    colours = Registry("colour", fix="Register it with add_colour.")
    colours.register("red", 1)
    colours.register("green", 2)
    with pytest.raises(ConfigError) as info:
        colours.lookup("gren")
    assert str(info.value) == "unknown colour 'gren'. Did you mean 'green'? Register it with add_colour."
    with pytest.raises(ConfigError, match=r"^key 'x': unknown colour 'blue'\. Register it"):
        colours.lookup("blue", where="key 'x'")
    assert colours.lookup("red") == 1


def test_did_you_mean_suggests_up_to_n_names():
    # difflib ratios: 'abcd' 1.0, 'abcx' 2*3/8 = 0.75, 'xyz' 0 (below the 0.5 cutoff); best first
    assert did_you_mean("abcd", ["xyz", "abcx", "abcd"], n=2) == " Did you mean 'abcd', 'abcx'?"
    assert did_you_mean("abcd", ["xyz", "abcx", "abcd"]) == " Did you mean 'abcd'?"
    assert did_you_mean("zzz", ["edsr"]) == ""


def test_duplicate_rule():
    replacing = Registry("thing", fix=".")
    replacing.register("a", 1)
    replacing.register("a", 2)
    assert replacing["a"] == 2
    strict = Registry("thing", fix=".", overwrite=False)
    strict.register("a", 1)
    strict.register("a", 1)  # the same entry again (a module imported twice) is fine
    with pytest.raises(ConfigError, match="thing 'a' is registered already"):
        strict.register("a", 2)


def test_loader_runs_once_on_the_first_unknown_name():
    calls = []

    def loader():
        calls.append(1)
        things.register("late", 3)

    things = Registry("thing", fix=".", loader=loader)
    things.register("early", 1)
    assert things.lookup("early") == 1 and calls == []  # a known name loads nothing
    assert things.lookup("late") == 3 and calls == [1]
    with pytest.raises(ConfigError):
        things.lookup("never")
    assert calls == [1]


def test_names_are_a_sorted_glob_and_copy_is_independent():
    things = Registry("thing", fix=".", error=SpecError)
    for name in ("edsr", "rcan", "edsr_baseline"):
        things.register(name, name.upper())
    assert things.names("edsr*") == ["edsr", "edsr_baseline"]
    assert sorted(things) == ["edsr", "edsr_baseline", "rcan"] and len(things) == 3
    copy = things.copy()
    copy.register("new", 0)
    assert "new" not in things and "new" in copy
    with pytest.raises(SpecError):
        things.lookup("nope")


def test_the_zoo_uses_it():
    from visionfw.zoo.parts import BLOCKS, LAYERS
    from visionfw.zoo.registry import MODELS, model_entry

    assert all(isinstance(r, Registry) for r in (BLOCKS, LAYERS, MODELS))
    with pytest.raises(ModelNotFoundError, match=r"unknown model 'edsr_basline'\. Did you mean 'edsr_baseline'"):
        model_entry("edsr_basline")
    assert "rcab" in BLOCKS.names() and "resblock" in BLOCKS.names()  # a family's block and a shared one


def test_tasks_register_themselves_from_the_tasks_folder():
    # TensorFlow loads here (the task modules import it): the slowest test of this file
    from visionfw.tasks.base import TASKS, get_task

    assert isinstance(TASKS, Registry)
    with pytest.raises(ConfigError, match=r"unknown task 'colorise'\. Did you mean 'colorize'\?"):
        get_task("colorise")  # the first unknown name imported every module of visionfw/tasks
    assert {"sr", "tad", "colorize", "video_sr", "gan"} <= set(TASKS)
