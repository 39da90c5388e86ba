"""Which learner draws a (strategy, seed) curve: one picklable entry for the job pool."""

from trainer.simulation.inputs import SimConfig
from trainer.simulation.learners import run_finetune, run_head
from trainer.simulation.product import run_product


def run_curve(job: tuple[SimConfig, str, int]) -> str:
    """The (cfg, strategy, seed) job's curve by cfg.learner; the path of its rows."""
    run = {"head": run_head, "product": run_product}.get(job[0].learner, run_finetune)
    return str(run(*job))
