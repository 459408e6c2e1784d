"""negprompt: learning transferable negative prompts for OOD detection (Li et al., CVPR 2024)."""

__version__ = "0.1.0"


class NegPromptError(Exception):
    """A user-facing error: bad input, bad parameter, missing file. The message names what and where."""


def progress(iterable=None, desc: str | None = None, unit: str = "it", total: int | None = None, **kwargs):
    """The one progress bar of every stage and script: tqdm on stderr with its count, rate and ETA.

    Shown whether or not stderr is a terminal (tqdm's default, so a queued experiment's log still says how far a
    stage got), but redrawn at most every 0.1 s on a terminal and every 30 s in a log file, so a log keeps a few
    lines a minute rather than ten a second. `kwargs` go to tqdm as they are (initial, leave, ...)."""
    import sys

    from tqdm import tqdm

    kwargs.setdefault("mininterval", 0.1 if sys.stderr.isatty() else 30.0)
    return tqdm(iterable, desc=desc, unit=unit, total=total, dynamic_ncols=True, **kwargs)
