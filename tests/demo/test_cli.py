"""zse-demo's choices: the cut-down export recipe, CPU seconds, step numbering."""

from zse_infer.demo.cli import Clock, cpu_seconds, demo_recipe
from zse_infer.exporting.recipes import load_recipe


def test_demo_recipe_keeps_only_what_the_demo_runs():
    full, demo = load_recipe("zse_demo"), demo_recipe("zse_demo")
    assert demo.variants == ("plain",) and demo.validation_batch_sizes == (2,)
    assert demo.search == full.search and demo.tolerances == full.tolerances and demo.config == full.config


def test_cpu_seconds_count_work():
    before = cpu_seconds()
    sum(i * i for i in range(300_000))
    assert cpu_seconds() > before


def test_steps_are_numbered_out_of_those_that_run(capsys):
    """Issue 20: with --skip-random the demo counted [1/5] ... [4/5] and never reached 5."""
    clock = Clock(total=4)
    for text in ("export", "index", "search", "evaluate"):
        clock.start(text)
        clock.done(text)
    err = capsys.readouterr().err
    assert "[1/4] export" in err and "[4/4] evaluate" in err and "/5]" not in err
    assert set(clock.steps) == {"export", "index", "search", "evaluate"}
