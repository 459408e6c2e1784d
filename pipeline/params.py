"""Stage `params`: validate the whole of params.yaml before any other stage touches an output.

DVC deletes a stage's outputs just before it runs it, so a bad value found inside `train_pos@1` used to cost
that stage's committed per-epoch curves, and the bad value stayed in params.yaml for the next run to trip on.
Every stage depends on this stage's output, so DVC runs it first; it stops on the first bad key, naming it and
how to get the previous params back, before anything else is run or deleted.

Its output holds a constant: while params are valid it never changes, so it never makes a stage rerun.
dvc.yaml marks it `persist`, so DVC does not delete it before running this stage either.
"""

from pathlib import Path

from negprompt import NegPromptError
from negprompt.config import check_select
from negprompt.io import atomic_path
from negprompt.workspace import load_params
from pipeline.common import run

OK = Path("data/params.ok")
TEXT = "params.yaml is valid (pipeline/params.py; this file never changes, so no stage reruns because of it)\n"
# not `git checkout params.yaml`: after a failed `dvc exp run -S` that kept the file's size, git's index takes the
# file for unchanged and leaves it as it is (docs/experiments.md)
RESTORE = (
    "nothing was run or deleted; get the committed params back with `git show HEAD:params.yaml > params.yaml`, "
    "an experiment's with `dvc exp apply <exp>`"
)


def main():
    try:
        params = load_params()
        check_select("pos", params.pos.select, params.subset.calib_per_class)
        check_select("neg", params.neg.select, params.subset.calib_per_class)
    except NegPromptError as e:
        raise NegPromptError(f"{e} ({RESTORE})") from None
    if not OK.is_file() or OK.read_text() != TEXT:
        with atomic_path(OK) as tmp:
            tmp.write_text(TEXT)
    print("params.yaml: every section is valid")


if __name__ == "__main__":
    run(main, uses_torch=False)
