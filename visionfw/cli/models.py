"""`visionfw models` and `visionfw describe --model=NAME [--scale=S]`."""
from absl import flags

from visionfw.cli.common import define_flag

FLAGS = flags.FLAGS
define_flag("string", "model", None, "Registry name of the model (see `visionfw models`).")
define_flag("integer", "scale", None, "Upscaling factor (default: the model's own).")
define_flag("string", "pattern", "*", "Glob filter for `visionfw models`, e.g. 'edsr*'.")
define_flag("string", "task", None, "Only models of this task: sr, tad or colorize.")
define_flag("boolean", "dot", False, "`describe`: print the graph as graphviz DOT instead of a table.")


def main(command, argv):
    from visionfw import registry
    from visionfw.errors import ConfigError
    from visionfw.spec_tools import describe, spec_to_dot

    if command == "models":
        names = registry.list_models(FLAGS.pattern, task=FLAGS.task)
        width = max((len(n) for n in names), default=4)
        print(f"{'name':<{width}}  {'family':<8}  {'task':<8}  {'scales':<9}  description")
        for name in names:
            e = registry.model_entry(name)
            scales = ",".join(map(str, e.scales))
            print(f"{name:<{width}}  {e.family:<8}  {e.task:<8}  {scales:<9}  {e.description}")
        return 0
    if not FLAGS.model:
        raise ConfigError("describe needs --model=NAME (see `visionfw models`).")
    hyper = {"scale": FLAGS.scale} if FLAGS.scale else {}
    spec = registry.get_spec(FLAGS.model, **hyper)
    if FLAGS.dot:
        print(spec_to_dot(spec))
    else:
        describe(spec)
    return 0
