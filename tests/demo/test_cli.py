"""zse-demo's choices: the cut-down export recipe, CPU seconds."""

from zse_infer.demo.cli import cpu_seconds, demo_recipe
from zse_infer.exporting.recipes import load_recipe


def test_demo_recipe_keeps_only_what_the_demo_runs():
    full, demo = load_recipe("zse_demo"), demo_recipe("zse_demo")
    assert demo.variants == ("plain",) and demo.validation_batch_sizes == (2,)
    assert demo.search == full.search and demo.tolerances == full.tolerances and demo.config == full.config


def test_cpu_seconds_count_work():
    before = cpu_seconds()
    sum(i * i for i in range(300_000))
    assert cpu_seconds() > before
