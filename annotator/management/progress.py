"""A tqdm bar fed by the trainer's progress callback (management commands that train)."""

from collections.abc import Callable

from tqdm import tqdm


def step_bar(desc: str) -> tuple[tqdm, Callable[[dict], None]]:
    """(bar, callback): the callback takes trainer progress dicts (step, total_steps, epoch,
    epochs, loss) and moves the bar to the step; close the bar when done."""
    bar = tqdm(total=0, unit="step", desc=desc)

    def progress(state: dict) -> None:
        bar.total = state["total_steps"]
        bar.set_postfix(epoch=f"{state['epoch']}/{state['epochs']}", loss=state["loss"])
        bar.update(state["step"] - bar.n)

    return bar, progress
