"""The experiment grid as cluster jobs through submitit (`grid.py --executor slurm` or `--executor local`).

Each grid row is one job, with the resources of `grid-cluster.yaml` (or `--resources`, `--resource KEY=VALUE`). A
job clones the Git remote at the base commit into its own directory, points DVC at the shared remote (or at a
shared cache, `cache_dir`), pulls the run-cache (so that the stages another row already ran are restored, not
recomputed), runs `dvc exp run --temp -n grid-<row> -S ...` and pushes the experiment with its outputs and
run-cache (`dvc exp push`). The driver shows the jobs' progress, reports a failed row with its log and goes on;
at the end it pulls the experiments (`dvc exp pull`) for grid.py's report. Job ids are kept in a state file
(`<folder>/state.json`), so that `--resume` re-attaches to jobs still running and skips the rows whose
experiment is already in the Git remote at the base commit. docs/cluster.md has the set-up.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

RESOURCES = Path(__file__).with_name("grid-cluster.yaml")
KEYS = (
    "partition",
    "account",
    "qos",
    "gpus",
    "cpus",
    "mem_gb",
    "time_min",
    "max_requeue",
    "setup",
    "cache_dir",
    "workdir",
)
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED", "PREEMPTED"}
POLL_S = float(os.environ.get("GRID_POLL_S", 3))


class GridError(Exception):
    """Bad input, found before anything is submitted: grid.py prints it as one line and exits with 2."""


def out(*cmd: str, cwd: Path | str | None = None) -> str:
    """The stdout of a command; GridError with its last line of stderr when it fails."""
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if res.returncode:
        last = ([line for line in res.stderr.splitlines() if line.strip()] or [f"exit {res.returncode}"])[-1]
        raise GridError(f"{' '.join(cmd[:3])} failed: {last.strip()}")
    return res.stdout


# ---------------------------------------------------------------- resources


def parse_value(text: str):
    return yaml.safe_load(text) if text.strip() else None


def resources(path: Path, rows: dict, overrides: list[str]) -> dict[str, dict]:
    """{row: its resources}: the file's defaults, then its entry for the row's group, then the row's, then the
    overrides."""
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise GridError(f"cannot read the resources file {path}: {e}") from None
    unknown_sections = set(spec) - {"defaults", "rows"}
    if unknown_sections:
        raise GridError(f"{path}: unknown section {', '.join(sorted(unknown_sections))} (known: defaults, rows)")
    cli = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise GridError(f"--resource {item}: expected KEY=VALUE")
        cli[key.strip()] = parse_value(value)
    layers = [("defaults", spec.get("defaults") or {})] + [
        (f"rows.{k}", v or {}) for k, v in (spec.get("rows") or {}).items()
    ]
    for where, layer in layers + [("--resource", cli)]:
        bad = sorted(set(layer) - set(KEYS))
        if bad:
            raise GridError(
                f"unknown resource key {', '.join(bad)} in "
                f"{where if where == '--resource' else f'{path.name} ({where})'} (known: {', '.join(KEYS)})"
            )
    per_row = {}
    for name, row in rows.items():
        res = {k: None for k in KEYS} | {"gpus": 0, "cpus": 1, "time_min": 60, "max_requeue": 0, "setup": []}
        res.update(spec.get("defaults") or {})
        res.update((spec.get("rows") or {}).get(row.get("group"), None) or {})
        res.update((spec.get("rows") or {}).get(name, None) or {})
        res.update(cli)
        for key in ("gpus", "cpus", "time_min", "max_requeue"):
            if not isinstance(res[key], int) or res[key] < (1 if key in ("cpus", "time_min") else 0):
                raise GridError(
                    f"resource {key} of row {name} must be a whole number"
                    f"{' >= 1' if key in ('cpus', 'time_min') else ' >= 0'}, not {res[key]!r}"
                )
        if isinstance(res["setup"], str):
            res["setup"] = [res["setup"]]
        per_row[name] = res
    return per_row


def check_partitions(per_row: dict[str, dict]) -> None:
    """Slurm answers and knows each row's partition."""
    if not shutil.which("sbatch"):
        raise GridError(
            "--executor slurm: sbatch is not on PATH (run the driver where Slurm's commands are, e.g. a login node)"
        )
    known = set(out("sinfo", "--noheader", "--format=%R").split())
    for name, res in per_row.items():
        if res["partition"] and res["partition"] not in known:
            raise GridError(
                f"unknown partition {res['partition']!r} (row {name}; Slurm has: {', '.join(sorted(known)) or 'none'})"
            )


# ---------------------------------------------------------------- remotes


def git_remote(name: str, base: str) -> str:
    """The Git remote's URL (absolute for a local path); the base commit must be there for the jobs to clone it."""
    res = subprocess.run(["git", "remote", "get-url", name], capture_output=True, text=True)
    if res.returncode:
        raise GridError(
            f"no Git remote {name!r}: the jobs clone the base commit from it and push their experiments to it "
            f"(git remote add {name} <url>; git push {name} HEAD)"
        )
    url = res.stdout.strip()
    if "://" not in url and ":" not in url.split("/")[0] and Path(url).exists():
        url = str(Path(url).resolve())
    out("git", "fetch", "--quiet", name)
    if not out("git", "branch", "--remotes", "--contains", base).strip() and base not in out("git", "ls-remote", name):
        raise GridError(
            f"commit {base[:8]} is not on the Git remote {name!r}, where the jobs clone it from: git push {name} HEAD"
        )
    return url


def dvc_remote() -> dict:
    """The default DVC remote's name and URL, after checking that it answers."""
    from dvc.config import NoRemoteError
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(".") as repo:
            remote = repo.cloud.get_remote()
            url = remote.path if remote.fs.protocol in ("local", "file") else repo.config["remote"][remote.name]["url"]
            try:
                if not remote.fs.exists(remote.path):
                    remote.fs.makedirs(remote.path)
                remote.fs.ls(remote.path)
            except Exception as e:  # noqa: BLE001 - any failure means the jobs could not reach it either
                raise GridError(
                    f"the DVC remote {remote.name!r} ({url}) is not reachable: {type(e).__name__}: {e}".splitlines()[0]
                ) from None
            return {"name": remote.name, "url": url}
    except NoRemoteError:
        raise GridError(
            "no default DVC remote: the jobs share their stages through it (dvc remote add -d <name> <url>)"
        ) from None
    except DvcException as e:
        raise GridError(f"the DVC remote: {(str(e).splitlines() or [type(e).__name__])[0]}") from None


def remote_experiments(remote: str, base: str) -> set[str]:
    """Names of the experiments the Git remote holds at the base commit."""
    prefix = f"refs/exps/{base[:2]}/{base[2:]}/"
    return {
        ref[len(prefix) :]
        for line in out("git", "ls-remote", remote).splitlines()
        for ref in line.split()[1:]
        if ref.startswith(prefix)
    }


# ---------------------------------------------------------------- the job


def run(*cmd: str, cwd: Path, env: dict, check: bool = True) -> int:
    """A command of the job, its output in the job's log."""
    print(f"+ [{time.strftime('%H:%M:%S')}]", shlex.join(cmd), flush=True)
    code = subprocess.run(cmd, cwd=cwd, env=env).returncode
    if check and code:
        raise RuntimeError(f"{shlex.join(cmd[:4])} exited with {code}")
    return code


class RowJob:
    """One grid row in its own clone: pull the run-cache, `dvc exp run --temp`, `dvc exp push`. Requeued by
    submitit after a time-out or a preemption (checkpoint); the run-cache keeps the stages already done."""

    def __call__(self, spec: dict) -> str:
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "NEGPROMPT_THREADS": str(spec["cpus"])}
        if spec.get("checkpoints"):  # outside the clone, which every attempt deletes: a requeued row resumes
            env["NEGPROMPT_CHECKPOINTS"] = spec["checkpoints"]
        root = Path(os.path.expandvars(spec["workdir"] or os.environ.get("TMPDIR") or tempfile.gettempdir()))
        root.mkdir(parents=True, exist_ok=True)
        work = (
            root / f"grid-{spec['row']}-"
            f"{os.environ.get('SLURM_JOB_ID') or os.environ.get('SUBMITIT_LOCAL_JOB_ID') or os.getpid()}"
        )
        shutil.rmtree(work, ignore_errors=True)
        try:
            run("git", "clone", "--quiet", "--no-checkout", spec["origin"], str(work), cwd=root, env=env)
            run("git", "checkout", "--quiet", "--detach", spec["base"], cwd=work, env=env)
            dvc = [str(Path(bin_dir) / "dvc")]
            remote = spec["dvc_remote"]
            run(
                *dvc,
                "remote",
                "add",
                "--local",
                "--force",
                "--default",
                remote["name"],
                remote["url"],
                cwd=work,
                env=env,
            )
            if spec["cache_dir"]:
                run(*dvc, "cache", "dir", "--local", os.path.expandvars(spec["cache_dir"]), cwd=work, env=env)
                run(*dvc, "config", "--local", "cache.shared", "group", cwd=work, env=env)
            elif run(
                *dvc, "fetch", "--run-cache", cwd=work, env=env, check=False
            ):  # the base commit's outputs and the run-cache
                print("(not everything fetched: what is missing runs here)", flush=True)
            # --pull: a stage another row already ran (in the run-cache) is restored from the DVC remote, not rerun
            targets = spec.get("targets") or []
            run(*dvc, "exp", "run", "--temp", "--pull", "-n", spec["exp"], *spec["args"], *targets, cwd=work, env=env)
            if targets:  # the shared stages of a grid (grid.run_shared): their run-cache for the rows, no experiment
                if not spec["cache_dir"]:
                    run(*dvc, "push", "--run-cache", cwd=work, env=env)
                return spec["exp"]
            data = (
                ["--no-cache", "--no-run-cache"] if spec["cache_dir"] else ["--run-cache"]
            )  # a shared cache already has them
            run(*dvc, "exp", "push", "--force", *data, spec["git_remote"], spec["exp"], cwd=work, env=env)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return spec["exp"]

    def checkpoint(self, spec: dict):
        import submitit

        return submitit.helpers.DelayedSubmission(self, spec)


# ---------------------------------------------------------------- the driver


def executor_for(kind: str, folder: Path, res: dict):
    import submitit

    ex = submitit.AutoExecutor(
        folder=folder / "logs" / "%j",
        cluster=kind,
        **({"slurm_max_num_timeout": res["max_requeue"]} if kind == "slurm" else {}),
    )
    params = {"timeout_min": res["time_min"], "cpus_per_task": res["cpus"], "stderr_to_stdout": True}
    if res["gpus"]:
        params["gpus_per_node"] = res["gpus"]
    if res["mem_gb"]:
        params["mem_gb"] = res["mem_gb"]
    if kind == "slurm":
        params |= {f"slurm_{k}": res[k] for k in ("partition", "account", "qos") if res[k]}
        params |= {"slurm_setup": res["setup"]} if res["setup"] else {}
    elif res["setup"]:
        params["local_setup"] = res["setup"]
    ex.update_parameters(**params)
    return ex


def attach(kind: str, folder: Path, job_id: str):
    import submitit

    cls = submitit.SlurmJob if kind == "slurm" else submitit.local.local.LocalJob
    return cls(folder=folder / "logs" / "%j", job_id=job_id)


def squeue(ids: list[str]) -> dict[str, str] | None:
    """{job id: Slurm state} of the jobs Slurm still holds; None when squeue does not answer (a busy controller):
    nothing is concluded from that poll. (submitit's `job.state` / `job.done()` read sacct, which answers nothing
    on a cluster without accounting: there a job killed before writing its result would stay 'running' forever.)"""
    if not ids:
        return {}
    res = subprocess.run(
        ["squeue", "--noheader", "--format=%i|%T", "--jobs", ",".join(ids)], capture_output=True, text=True
    )
    if res.returncode and "Invalid job id" not in res.stderr:  # squeue says so for ids that all left the queue
        return None
    return dict(line.strip().split("|", 1) for line in res.stdout.splitlines() if "|" in line)


def outcome(job) -> tuple[str, str] | None:
    """('done' | 'failed', message) once submitit has the job's result (`job.done()`, `job.exception()`), None
    before. A job that ended without a result is 'failed' only where submitit can tell (a local process it started,
    or Slurm with accounting); elsewhere the caller asks squeue."""
    from submitit.core.utils import UncompletedJobError

    if not job.done():
        return None
    try:
        error = job.exception()
    except EOFError:  # a result pickle still being written: read again at the next poll
        return None
    if error is None:
        return "done", ""
    if isinstance(error, UncompletedJobError):
        return "failed", f"ended without a result ({job.state})"
    lines = [line for line in str(error).splitlines() if line.strip()]
    rules = [i for i, line in enumerate(lines) if set(line.strip()) == {"-"}]
    return "failed", (lines[rules[-1] - 1] if len(rules) >= 2 else lines[-1]).strip()  # the trace's last line


def alive_locally(job_id: str) -> bool:
    """Whether a local job an earlier driver started still runs (submitit's LocalJob knows only the processes it
    started itself: re-attached by id, its state is 'NO PROCESS AND NO RESULT' even while the job runs)."""
    import psutil

    try:
        return "submitit" in " ".join(psutil.Process(int(job_id)).cmdline())
    except (psutil.Error, ValueError):
        return False


def log_tail(job) -> str:
    """The job log's most telling line: a stage's own `error: ...`, else DVC's last `ERROR: ...`."""
    try:
        lines = [line.strip() for line in job.paths.stdout.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    for prefix in ("error: ", "ERROR: "):
        found = [line for line in lines if line.startswith(prefix)]
        if found:
            return found[-1]
    return ""


class Tracker:
    """Jobs of one driver run: their states, the progress bar, the state file. (submitit.helpers.monitor_jobs
    blocks until every job is done: it neither holds back rows beyond --jobs nor reports a row as it ends.)"""

    def __init__(self, kind: str, folder: Path, base: str, names: list[str]):
        from tqdm import tqdm

        self.kind, self.folder, self.base = kind, folder, base
        self.state_file = folder / "state.json"
        self.jobs: dict[str, object] = {}
        self.attached: set[str] = set()  # rows whose local job an earlier driver started
        self.states: dict[str, str] = {n: "queued" for n in names}
        self.ended_at: dict[str, float] = {}
        self.postfix = ""
        self.bar = tqdm(total=len(names), desc=f"grid ({kind})", unit="exp")

    def save(self) -> None:
        """The job ids by row; an earlier driver's entries for other rows (same base commit and executor) are kept."""
        self.folder.mkdir(parents=True, exist_ok=True)
        jobs = recorded_job_ids(self.kind, self.folder, self.base) | {n: j.job_id for n, j in self.jobs.items()}
        self.state_file.write_text(
            json.dumps({"base": self.base, "executor": self.kind, "jobs": jobs}, indent=1) + "\n"
        )

    def add(self, name: str, job, how: str) -> None:
        self.jobs[name] = job
        self.states[name] = "pending"
        if how == "re-attached" and self.kind == "local":
            self.attached.add(name)
        self.save()
        self.bar.write(f"{how} grid-{name}: job {job.job_id}, log {job.paths.stdout}")
        sys.stdout.flush()  # tqdm.write takes no flush: a driver's log shows each submission at once

    def poll(self) -> None:
        live = [n for n, s in self.states.items() if s in ("pending", "running")]
        slurm = squeue([self.jobs[n].job_id for n in live]) if self.kind == "slurm" else {}
        for name in live:
            job = self.jobs[name]
            if name in self.attached and alive_locally(job.job_id):
                self.states[name] = "running"
                continue
            end = outcome(job)
            if end is None:
                if self.kind == "local":
                    self.states[name] = "running"
                    continue
                if slurm is None:
                    continue
                st = slurm.get(job.job_id)
                if st is not None:
                    self.states[name] = "pending" if st in ("PENDING", "REQUEUED", "CONFIGURING") else "running"
                    continue
                # gone from squeue without a result: killed, cancelled, out of memory or time (give the file system
                # a moment)
                first = self.ended_at.setdefault(name, time.time())
                if time.time() - first < 20:
                    continue
                end = ("failed", f"ended without a result ({self.slurm_state(job)})")
            self.states[name] = end[0]
            self.bar.update(1)
            if end[0] == "failed":
                self.bar.write(f"failed: grid-{name}: {log_tail(job) or end[1]}; log: {job.paths.stdout}")
            else:
                self.bar.write(f"done: grid-{name}")
        counts = {
            s: sum(v == s for v in self.states.values()) for s in ("queued", "pending", "running", "done", "failed")
        }
        postfix = (
            " ".join(f"{k}={v}" for k, v in counts.items() if v)
            + "; running: "
            + (", ".join(n for n, s in self.states.items() if s == "running") or "-")
        )
        if postfix != self.postfix:  # redrawn on a change only: a log file gets one line per change, not per poll
            self.postfix = postfix
            self.bar.set_postfix_str(postfix)

    def slurm_state(self, job) -> str:
        if self.kind != "slurm":
            return "process gone"
        try:
            return f"Slurm: {job.get_info().get('State') or 'unknown state'}"
        except Exception:  # noqa: BLE001 - sacct needs Slurm's accounting, which not every cluster has
            return "no longer in squeue"

    def active(self) -> int:
        return sum(s in ("pending", "running") for s in self.states.values())

    def close(self) -> None:
        self.bar.close()


def recorded_job_ids(kind: str, folder: Path, base: str) -> dict[str, str]:
    """{row: job id} from the state file, if it was written for this base commit and executor."""
    path = folder / "state.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    return data.get("jobs", {}) if (data.get("base"), data.get("executor")) == (base, kind) else {}


def earlier_jobs(kind: str, folder: Path, base: str) -> dict[str, object]:
    """Jobs the state file records for this base commit and executor that are still pending or running."""
    jobs = {n: attach(kind, folder, jid) for n, jid in recorded_job_ids(kind, folder, base).items()}
    if kind == "slurm":
        held = squeue([j.job_id for j in jobs.values()])
        if held is None:
            raise GridError(
                "squeue does not answer: cannot tell which of the earlier driver's jobs still run (try again)"
            )
        return {n: j for n, j in jobs.items() if j.job_id in held and not j.done()}
    return {n: j for n, j in jobs.items() if alive_locally(j.job_id)}


def run_shared_jobs(kind: str, folder: Path, firsts: list[str], per_row: dict, spec_of, targets: tuple[str, ...]):
    """One job per group of rows that share a backbone and data (`firsts`: each group's first row) runs the shared
    stages with that row's settings and pushes their run-cache; the rows start once these jobs have ended, and
    restore those stages instead of encoding the images again. A failed shared job only costs time: its rows run the
    stages themselves."""
    jobs = {}
    for first in firsts:
        spec = spec_of(first) | {"exp": f"grid-shared-{first}", "targets": list(targets), "checkpoints": None}
        jobs[first] = executor_for(kind, folder, per_row[first]).submit(RowJob(), spec)
        job = jobs[first]
        print(f"submitted the shared stages for the rows like {first}: job {job.job_id}, log {job.paths.stdout}")
        sys.stdout.flush()
    for first, job in jobs.items():
        while True:
            end = outcome(job)
            if end is None and kind == "slurm":
                held = squeue([job.job_id])
                if held is not None and job.job_id not in held:
                    time.sleep(20)  # gone from the queue: the result file, if any, shows up within moments
                    end = outcome(job) or ("failed", "ended without a result")
            if end is not None:
                break
            time.sleep(POLL_S)
        if end[0] == "failed":
            print(f"the shared stages for the rows like {first} failed ({log_tail(job) or end[1]}): "
                  "its rows run them themselves", flush=True)  # fmt: skip


def run_cluster(
    kind: str,
    rows: dict,
    row_args: dict[str, list[str]],
    base: str,
    *,
    resources_file: Path = RESOURCES,
    resource_overrides: list[str] = (),
    resume: bool = False,
    jobs: int = 0,
    git_remote_name: str = "origin",
    folder: Path = Path(".dvc/tmp/grid"),
    checkpoints: Path | None = None,
    shared_stages: tuple[str, ...] = (),
    shared_groups=None,
) -> dict[str, str]:
    # shared_stages, shared_groups: the stages every row of a backbone and data shares, and grid.shared_groups (the
    # first row of each group of rows with the same settings of those stages' params); none: each row runs its own
    """Runs the rows as jobs and pulls their experiments; returns {experiment: 'Success' | 'Failed'} like
    grid.run_queue. Every check that can fail on bad input runs before the first submission."""
    per_row = resources(resources_file, rows, list(resource_overrides))
    if kind == "slurm":
        check_partitions(per_row)
    origin = git_remote(git_remote_name, base)
    remote = dvc_remote()
    folder = folder.resolve()
    running = earlier_jobs(kind, folder, base)
    if running and not resume:
        raise GridError(
            "jobs of an earlier driver are still running "
            f"({', '.join(f'grid-{n}: {j.job_id}' for n, j in running.items())}): "
            f"--resume to follow them{', or scancel them' if kind == 'slurm' else ''}"
        )
    done_before = remote_experiments(git_remote_name, base) if resume else set()
    skipped = [n for n in rows if f"grid-{n}" in done_before and n not in running]
    if skipped:
        print(
            f"--resume: {len(skipped)} experiments already in {git_remote_name} at {base[:8]}: {', '.join(skipped)}",
            flush=True,
        )
    todo = [n for n in rows if n not in skipped]
    states = {f"grid-{n}": "Success" for n in skipped}
    if todo:
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the jobs need not import this file

        def spec_of(name: str) -> dict:
            return {
                "row": name,
                "exp": f"grid-{name}",
                "args": row_args[name],
                "base": base,
                "origin": origin,
                "git_remote": git_remote_name,
                "dvc_remote": remote,
                "checkpoints": str(checkpoints) if checkpoints else None,
                **{k: per_row[name][k] for k in ("cpus", "cache_dir", "workdir")},
            }

        if shared_stages and shared_groups and not running:
            groups = shared_groups({n: row_args[n] for n in todo})
            run_shared_jobs(kind, folder, list(groups), per_row, spec_of, shared_stages)
        tracker = Tracker(kind, folder, base, todo)
        for name in todo:
            if name in running:
                tracker.add(name, running[name], "re-attached")
        waiting = [n for n in todo if n not in running]
        limit = jobs or len(todo)
        try:
            while waiting or tracker.active():
                while waiting and tracker.active() < limit:
                    name = waiting.pop(0)
                    job = executor_for(kind, folder, per_row[name]).submit(RowJob(), spec_of(name))
                    tracker.add(name, job, "submitted")
                time.sleep(POLL_S)
                tracker.poll()
        except KeyboardInterrupt:
            tracker.close()
            left = [f"grid-{n}" for n, s in tracker.states.items() if s in ("pending", "running")]
            sys.exit(
                f"driver stopped; {len(left)} jobs not finished ({', '.join(left) or 'none'}): "
                "the same command with --resume follows them"
                f"{' (Slurm jobs keep running)' if kind == 'slurm' else ' (local jobs stop with the terminal)'}"
            )
        finally:
            tracker.close()
        states |= {f"grid-{n}": "Success" if s == "done" else "Failed" for n, s in tracker.states.items()}
    pulled = [e for e, s in states.items() if s == "Success"]
    if pulled:
        out("dvc", "exp", "pull", "--force", "--no-cache", git_remote_name, *pulled)
    return states
