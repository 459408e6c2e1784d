"""The scripts' shared command line (negprompt.commands) and progress bar (negprompt.progress)."""

import io

import pytest
import typer

from negprompt import NegPromptError, commands, progress


def test_a_multi_value_option_takes_every_word_up_to_the_next_option():
    argv = ["--workers", "0", "4", "15", "--batches", "20", "--classes=7", "pos", "--shift", "-1", "-2"]
    assert commands.spread_lists(argv, {"--workers", "--shift"}) == [
        *("--workers", "0", "--workers", "4", "--workers", "15"),
        *("--batches", "20", "--classes=7", "pos"),
        *("--shift", "-1", "--shift", "-2"),  # negative numbers are values, not options
    ]
    assert commands.spread_lists(["--workers", "0", "--", "1"], {"--workers"}) == ["--workers", "0", "--", "1"]


def _script(captured: dict):
    def main(
        workers: list[int] = typer.Option([0, 1]),
        batches: int = typer.Option(20),
        fail: bool = typer.Option(False, "--fail"),
    ):
        if fail:
            raise NegPromptError("--fail: asked to")
        captured.update(workers=workers, batches=batches)

    return main


@pytest.mark.parametrize(
    "argv, workers", [([], [0, 1]), (["--workers", "0", "4", "15"], [0, 4, 15]), (["--workers", "3"], [3])]
)
def test_a_script_takes_lists_as_argparse_did_and_keeps_its_defaults(argv, workers):
    captured = {}
    with pytest.raises(SystemExit) as done:
        commands.run(_script(captured), [*argv, "--batches", "2"])
    assert done.value.code == 0 and captured == {"workers": workers, "batches": 2}


def test_a_user_error_is_one_line_and_exit_code_2(capsys):
    with pytest.raises(SystemExit) as done:
        commands.run(_script({}), ["--fail"])
    assert done.value.code == 2 and capsys.readouterr().err == "error: --fail: asked to\n"


def test_subcommands_spread_their_lists_too():
    app, seen = commands.app(), []

    @app.command()
    def one(ks: list[int] = typer.Option([])):
        seen.append(ks)

    @app.command()
    def two():
        seen.append("two")

    with pytest.raises(SystemExit):
        commands.run(app, ["one", "--ks", "1", "2"])
    assert seen == [[1, 2]] and commands.list_options(typer.main.get_command(app)) == {"--ks"}


def test_the_progress_bar_shows_count_rate_and_eta_and_writes_a_log_sparsely(monkeypatch):
    log = io.StringIO()  # not a terminal
    monkeypatch.setattr("sys.stderr", log)
    bar = progress(range(3), "encode", "batch", file=log)
    assert list(bar) == [0, 1, 2] and bar.mininterval == 30.0
    line = log.getvalue().strip().split("\r")[-1]
    assert line.startswith("encode: 100%") and "3/3" in line and "batch/s]" in line and "<00:00" in line
