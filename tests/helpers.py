"""What several test modules share: the repository, a tiny configuration, throwaway git + dvc
repositories, running one stage or DVC, and the one-line error every bad input must give.
(Fixtures are in conftest.py.)"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "data": {"train_per_class": 4, "test_per_class": 2, "ood_per_set": 24, "image_size": 32},
    "subset": {"seeds": [1, 2], "shots": 2, "calib_per_class": 1},
    "features": {"batch_size": 128},
    "pos": {"epochs": 2},
    "neg": {"epochs": 1},
    "report": {"tsne_images": 40},
}

ONE_SEED = {**TINY, "subset": {**TINY["subset"], "seeds": [1]}}  # conftest's shared reproduced pipeline


def tiny_params(overrides: dict = TINY) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section].update(values)
    return params


def make_repo(tmp: Path, params: dict) -> Path:
    """A copy of the tracked pipeline files (no outputs, no lock) as a fresh git + dvc repository."""
    work = tmp / "repo"
    for rel in ("dvc.yaml", "pipeline", "src", "weights"):
        src = REPO / rel
        (
            shutil.copytree(src, work / rel, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            if src.is_dir()
            else (work.mkdir(parents=True, exist_ok=True), shutil.copy(src, work / rel))
        )
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "t@t"],
        ["git", "config", "user.name", "t"],
        [DVC, "init", "-q"],
    ):
        subprocess.run(cmd, cwd=work, check=True, env=env, capture_output=True)
    shutil.copytree(REPO / ".dvc/plots", work / ".dvc/plots")  # the ROC template and the offline HTML page
    shutil.copy(REPO / ".dvc/config", work / ".dvc/config")
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=work, check=True, env=env, capture_output=True)
    return work


def copy_reproduced(template: Path, dest: Path) -> Path:
    """A copy of conftest's reproduced repository (Git history, DVC cache and run-cache, outputs) at `dest`."""
    shutil.copytree(template, dest, symlinks=True)
    return dest


DVC = str(Path(sys.executable).parent / "dvc")


def dvc(work: Path, *args, check=True):
    # one thread per stage: `make test` runs a pytest-xdist worker per core, and two OpenMP threads per stage on a
    # shared core spin against each other (a training stage ran 4x slower so)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "NEGPROMPT_THREADS": "1"}
    out = subprocess.run([DVC, *args], cwd=work, env=env, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def up_to_date(status: str) -> bool:
    """`dvc status` says nothing is stale but the `tree` stage, which is `always_changed` (it lists data.root so
    that `data` reruns when the image tree changes; its output is byte-identical for an unchanged tree)."""
    lines = [x.strip().lower() for x in status.splitlines() if x.strip()]
    return "up to date" in " ".join(lines) or lines == ["tree:", "always changed"]


def stages_run(repro_stdout: str) -> list[str]:
    """The stages a `dvc repro` ran, `tree` (always run) left out."""
    ran = [line.split("'")[1] for line in repro_stdout.splitlines() if line.startswith("Running stage '")]
    return [name for name in ran if name != "tree"]


def stage(work: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    # this checkout's library first, whatever copy of negprompt the environment has installed
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "NEGPROMPT_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", f"pipeline.{name}", *args], cwd=work, env=env, capture_output=True, text=True
    )


def write_params(work: Path, **sections) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, values in sections.items():
        if isinstance(values, dict):
            params[key].update(values)
        else:
            params[key] = values
    (work / "params.yaml").write_text(yaml.safe_dump(params))


def one_line_error(res, *needles):
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2, res.stderr[-2000:]
    assert lines[-1].startswith("error: "), res.stderr[-2000:]
    for n in needles:
        assert n in lines[-1], lines[-1]


DEBIAN_WORDNET = Path("/usr/share/wordnet")  # Debian's wordnet-base + wordnet-sense-index (.ci/run installs them)


def write_wordnet_slice(dest: Path, every: int, keep=(), source: Path = DEBIAN_WORDNET) -> Path:
    """WordNet 3.0 cut to every `every`-th noun and adjective synset of Debian's files, plus the synsets of the
    lemmas in `keep`; no verbs or adverbs. The lines are WordNet's own (words, lexicographer files, satellites),
    offsets renumbered so the database stays consistent; pointers to dropped synsets are left as they were (never
    followed when reading lemmas and lexnames). Laid out by wordnet.prepare, which writes lexnames: the stages
    read it as they read the whole WordNet, at the cost of a corpus of a few hundred words."""
    from negprompt.methods import wordnet

    src = dest.parent / f"{dest.name}-source"
    src.mkdir(parents=True)
    maps = {}
    for pos, tags in (("noun", {"n"}), ("adj", {"a", "s"})):
        index = (source / f"index.{pos}").read_bytes().splitlines(keepends=True)
        wanted = {ln.split()[-1] for ln in index if ln.split()[0].decode() in keep}  # a kept lemma's first sense
        lines = (source / f"data.{pos}").read_bytes().splitlines(keepends=True)
        header = [ln for ln in lines if ln.startswith(b"  ")]
        synsets = [ln for ln in lines if not ln.startswith(b"  ")]
        chosen = {ln for i, ln in enumerate(synsets) if i % every == 0 or ln.split()[0] in wanted}
        heads = {h for ln in chosen if ln.split()[2] == b"s" for h in _satellite_heads(ln)}  # NLTK names a satellite
        kept = [ln for ln in synsets if ln in chosen or ln.split()[0] in heads]  # after its head adjective
        at, new = sum(map(len, header)), {}
        for ln in kept:  # a data line's length does not change: offsets are 8 digits
            new[ln.split()[0]] = b"%08d" % at
            at += len(ln)
        out = []
        for ln in kept:
            head, gloss = ln.split(b" | ", 1) if b" | " in ln else (ln.rstrip(b"\n"), None)
            f = head.split(b" ")
            f[0] = new[f[0]]
            words = int(f[3], 16)
            p = 4 + 2 * words + 1  # first pointer: symbol, offset, pos, source/target
            for j in range(int(f[p - 1])):
                if f[p + 4 * j + 2].decode() in tags and f[p + 4 * j + 1] in new:
                    f[p + 4 * j + 1] = new[f[p + 4 * j + 1]]
            out.append(b" ".join(f) + (b" | " + gloss if gloss is not None else b"\n"))
        (src / f"data.{pos}").write_bytes(b"".join(header + out))
        rows = []
        for ln in index:
            f = ln.split()
            if ln.startswith(b"  "):
                rows.append(ln)
                continue
            n = int(f[2])
            offs = [new[o] for o in f[-n:] if o in new]
            if offs:
                tagged = min(int(f[-n - 1]), len(offs))
                rows.append(
                    b" ".join([*f[:2], b"%d" % len(offs), *f[3 : -n - 2], b"%d" % len(offs), b"%d" % tagged, *offs])
                    + b"  \n"
                )
        (src / f"index.{pos}").write_bytes(b"".join(rows))
        maps[pos] = new
    for pos in ("verb", "adv"):
        (src / f"data.{pos}").write_bytes(
            b"".join(ln for ln in (source / f"data.{pos}").open("rb") if ln.startswith(b"  "))
        )
        (src / f"index.{pos}").write_bytes(b"")
    for pos in ("noun", "verb", "adj", "adv"):
        shutil.copyfile(source / f"{pos}.exc", src / f"{pos}.exc")
    senses = []  # sense_key synset_offset sense_number tag_cnt; the key's ss_type: 1 noun, 3 adjective, 5 satellite
    for ln in (source / "index.sense").open("rb"):
        key, off, *rest = ln.split()
        pos = {b"1": "noun", b"3": "adj", b"5": "adj"}.get(key.split(b"%")[1][:1])
        if pos and off in maps[pos]:
            senses.append(b" ".join([key, maps[pos][off], *rest]) + b"\n")
    (src / "index.sense").write_bytes(b"".join(senses))
    return wordnet.prepare(dest, src)


def _satellite_heads(line: bytes) -> list[bytes]:
    """The offsets a satellite adjective's similar-to pointers (`&`) name: its head adjective."""
    f = line.split(b" | ")[0].split(b" ")
    p = 4 + 2 * int(f[3], 16) + 1
    return [f[p + 4 * j + 1] for j in range(int(f[p - 1])) if f[p + 4 * j] == b"&"]
