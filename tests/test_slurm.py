"""profiles/slurm against a real SLURM: a one-node cluster on localhost.

The module fixture installs Debian's slurmctld, slurmd, slurm-client and munge when they
are missing, starts the cluster with scripts/slurm_local.sh and stops it by PID afterwards.
It skips, saying why, when it is not root or the packages cannot be installed.

- A dry run (no cluster, no root) shows site values from the command line reaching every job.
- The real DAG of one paper's table (TPSR's supplementary Table 2: every kind of stage, from
  data preparation to the rendered table, in the shortest chain) runs through the command
  block that the README's "Clusters" section shows. Every rule must run as one COMPLETED
  SLURM job that asked for the rule's CPUs, memory and time limit, and the table and every
  evaluation, count and genotype file must be byte-identical to the session's local build
  of the whole DAG (the ``built_project`` fixture, shared with tests/test_e2e.py, so CI runs
  no second local build). (One paper, not results/table2.md: the test node runs one job at a
  time, and every paper added would lengthen CI by its whole chain without testing anything
  new about SLURM.)
- A tiny workflow checks failure handling. One job fails and one is cancelled with scancel;
  both must be reported with their rule name and log paths. A rerun must resume.
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from project_copy import copy_project

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slurm_local.sh"
PROFILES = ["--profile", str(ROOT / "profiles" / "slurm"),
            "--profile", str(ROOT / "profiles" / "slurm" / "localhost")]
DAG_TIMEOUT_S = 3600  # the real DAG's runtime is set by the quick budget, not by this test


def readme_cluster_commands() -> list[list[str]]:
    """The commands of the block that the README's cluster section marks as run by this test."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("<!-- cluster:start -->"):text.index("<!-- cluster:end -->")]
    after = section.split("<!-- tests/test_slurm.py runs the commands of the next block verbatim -->", 1)[1]
    block = re.search(r"```bash\n(.*?)```", after, re.DOTALL).group(1)
    lines = block.replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.split("#", 1)[0].strip()]




def without_profiles(cmd: list[str]) -> list[str]:
    """The same snakemake command without its --profile options (the local comparison run)."""
    out, skip = [], False
    for word in cmd:
        if skip:
            skip = False
        elif word == "--profile":
            skip = True
        else:
            out.append(word)
    return out


def _script(action: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), action], capture_output=True, text=True,
                          env=env, timeout=900, check=False)


def _env() -> dict:
    return dict(os.environ, SRNAS_MLFLOW="0")


def test_the_profile_maps_site_values_and_declared_resources_in_a_dry_run():
    """No cluster needed: the profiles parse, and site values given on the command line
    reach every job next to the rule's own resources."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    proc = subprocess.run(["snakemake", "results/table2.md", *PROFILES, "--dry-run", "--forceall",
                           "--default-resources", "slurm_partition=part1", "slurm_account=acct1"],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip().startswith("resources:")]
    assert lines
    for line in lines:
        assert "slurm_partition=part1" in line and "slurm_account=acct1" in line, line
        assert re.search(r"mem_mb=\d+", line) and re.search(r"runtime=\d+", line), line
        assert re.search(r"gpu=\d+", line) and "gpu_model" not in line, line


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("needs root: installs Debian's SLURM packages and starts slurmctld/slurmd/munged")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.skip("snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')")
    if not shutil.which("dpkg-query"):
        pytest.skip("not a Debian/Ubuntu system: scripts/slurm_local.sh installs SLURM with apt-get")
    # One test cluster per machine (/etc/slurm is global): a second session skips.
    lock = os.open(os.path.join(tempfile.gettempdir(), "srnas-slurm-test.lock"),
                   os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        pytest.skip("another session's SLURM test cluster is running on this machine")
    # `timeout` and CI runners stop a run with SIGTERM: turn it into an interrupt, so that
    # the teardown below still stops the daemons.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield from _cluster()
    finally:
        signal.signal(signal.SIGTERM, previous)
        os.close(lock)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _leftover_test_cluster() -> Path | None:
    """The state dir of a test cluster whose session was killed before its teardown (we hold
    the lock, so no live session owns it); None for any other SLURM."""
    conf = Path("/etc/slurm/slurm.conf")
    text = conf.read_text() if conf.exists() else ""
    found = re.search(r"^SlurmctldPidFile=(.*)/slurmctld\.pid$", text, re.MULTILINE)
    if "written by srnas scripts/slurm_local.sh" not in text or not found:
        return None
    state = Path(found.group(1))
    if state.parent != Path(tempfile.gettempdir()) or not state.name.startswith(STATE_PREFIX):
        return None
    return state


STATE_PREFIX = "srnas-slurm-test-"


def _cluster():
    install = _script("install")
    if install.returncode in (3, 4):
        pytest.skip(f"cannot install SLURM: {install.stderr.strip() or install.stdout.strip()}")
    assert install.returncode == 0, install.stdout + install.stderr
    # Not under pytest's tmp folder: munged runs as the munge user, who cannot enter it.
    state = Path(tempfile.mkdtemp(prefix=STATE_PREFIX))
    env = dict(os.environ, SRNAS_SLURM_STATE=str(state))
    start = _script("start", env)
    leftover = _leftover_test_cluster() if start.returncode == 5 else None
    if leftover is not None:
        _script("stop", dict(os.environ, SRNAS_SLURM_STATE=str(leftover)))
        start = _script("start", env)
    if start.returncode == 5:
        shutil.rmtree(state, ignore_errors=True)
        pytest.skip(f"SLURM already runs on this machine: {start.stderr.strip()}")
    try:
        assert start.returncode == 0, start.stdout + start.stderr + _logs(state)
        yield state
    finally:
        stop = _script("stop", env)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        for daemon in ("munged", "slurmctld", "slurmd"):
            assert not (state / f"{daemon}.pid").exists(), f"{daemon} was not stopped"
        shutil.rmtree(state, ignore_errors=True)


def _logs(state: Path) -> str:
    out = []
    for name in ("slurmctld.log", "slurmd.log", "munge/munged.log"):
        path = state / name
        if path.exists():
            out.append(f"--- {name}\n" + path.read_text()[-3000:])
    return "\n".join(out)


def jobcomp(state: Path) -> dict[str, dict[str, str]]:
    """SLURM's job completion log (jobcomp/filetxt): job id -> its fields."""
    path = state / "jobcomp.txt"
    records = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        records[fields["JobId"]] = fields
    return records


def requested_gpus(jobid: str) -> int:
    """GPUs a job asked for (scontrol keeps finished jobs for MinJobAge, a day here)."""
    shown = subprocess.run(["scontrol", "show", "job", "-o", jobid], capture_output=True,
                           text=True, timeout=30, check=True).stdout
    found = re.search(r"TresPerJob=\S*gres:gpu:(\d+)", shown)
    return int(found.group(1)) if found else 0


SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def submitted_jobs(output: str) -> dict[str, str]:
    """SLURM job id -> rule name, from Snakemake's submission messages."""
    jobs = {}
    for jobid, log in SUBMITTED.findall(output):
        rule = re.search(r"/rule_([^/]+)/", log).group(1)
        jobs[jobid] = rule
    return jobs


@pytest.mark.root
@pytest.mark.slow
def test_the_dag_runs_as_slurm_jobs_and_matches_a_local_run(cluster, built_project, tmp_path):
    from test_reliability_dag import scheduled

    from srnas.dag import all_stages
    from srnas.params import load_params

    commands = readme_cluster_commands()
    assert commands and all(c[0] == "snakemake" for c in commands), commands
    target = commands[0][1]
    assert target.startswith("results/") and target.endswith(".md"), commands[0]
    assert without_profiles(commands[0])[:2] == ["snakemake", target] and "--profile" not in without_profiles(
        commands[0]), commands[0]
    on_slurm = copy_project(tmp_path / "slurm", dvc=True)
    # The rules the command must submit: its whole DAG, from nothing built.
    dry = subprocess.run(without_profiles(commands[0]) + ["--dry-run", "--cores", "1"], cwd=on_slurm,
                         env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    rules = scheduled(dry.stdout + dry.stderr)
    assert {"prepare_data", "render_" + target.removeprefix("results/").removesuffix(".md").replace("/", "_")} <= rules

    log = (tmp_path / "slurm.out").open("w+")
    codes = [subprocess.run(cmd, cwd=on_slurm, env=_env(), stdout=log, stderr=subprocess.STDOUT,
                            timeout=DAG_TIMEOUT_S, check=False).returncode for cmd in commands]
    log.seek(0)
    output = log.read()
    assert codes == [0] * len(commands), output[-8000:] + _logs(cluster)

    # What a local run writes, byte for byte: the table and every evaluation, count and
    # genotype file of this DAG, against the session's local build of the whole DAG (the
    # same stages, the same params: the command changes no key those stages read but the
    # device, and the local build ran on this CPU).
    local = built_project[0]
    assert (on_slurm / target).read_bytes() == (local / target).read_bytes()
    compared = 0
    for path in sorted((on_slurm / "results").rglob("*.json")):
        rel = path.relative_to(on_slurm)
        if "search" in rel.parts:
            continue   # a search folder's result.json records its wall time
        assert path.read_bytes() == (local / rel).read_bytes(), rel
        compared += 1
    assert compared >= 4, compared

    # every rule of the DAG ran as exactly one SLURM job of this run, and finished
    jobs = submitted_jobs(output)
    assert sorted(jobs.values()) == sorted(rules), output[-5000:]
    records = jobcomp(cluster)
    stages = {s.name: s for s in all_stages(load_params(on_slurm / "params.yaml"))}
    for jobid, rule in jobs.items():
        record = records.get(jobid)
        assert record is not None, f"SLURM has no record of job {jobid} ({rule})"
        assert record["JobState"] == "COMPLETED", record
        assert Path(record["WorkDir"]).resolve() == on_slurm.resolve(), record
        assert (on_slurm / ".snakemake" / "slurm_logs" / f"rule_{rule}" / f"{jobid}.log").is_file()
        # the rule's declared resources became the job's request
        stage = stages[rule]
        assert record["ProcCnt"] == str(stage.threads), (rule, record)
        assert f"mem={stage.mem_mb}M" in record["Tres"], (rule, record)
        assert record["TimeLimit"] == str(stage.runtime), (rule, record)
        # The run is pinned to the CPU (device=cpu, as the README block says), so no rule asks
        # for a GPU; on a GPU cluster the rules with gpu > 0 would.
        assert requested_gpus(jobid) == 0, (rule, jobid)


FAILING_WORKFLOW = """\
localrules: all

rule all:
    input: "b.txt", "slow.txt"

rule a:
    output: "a.txt"
    log: "logs/a.log"
    resources: mem_mb=100, runtime=5
    shell: "echo a > {output} 2> {log}"

rule b:
    input: "a.txt"
    output: "b.txt"
    log: "logs/b.log"
    resources: mem_mb=100, runtime=5
    shell: "(test -e fix_b || {{ echo 'b: deliberate failure' >&2; exit 3; }}; cp {input} {output}) 2> {log}"

rule slow:
    input: "a.txt"
    output: "slow.txt"
    log: "logs/slow.log"
    resources: mem_mb=100, runtime=5
    shell: "(test -e fix_slow || sleep 600; cp {input} {output}) 2> {log}"
"""


def _squeue(work: Path) -> dict[str, tuple[str, str]]:
    """Job id -> (state, comment) of this workflow's jobs (squeue keeps finished ones)."""
    out = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i|%T|%k|%Z"],
                         capture_output=True, text=True, timeout=30, check=False).stdout
    jobs = {}
    for line in out.splitlines():
        jobid, state, comment, workdir = line.split("|", 3)
        if Path(workdir).resolve() == work.resolve():
            jobs[jobid] = (state, comment)
    return jobs


@pytest.mark.root
@pytest.mark.slow
def test_failed_and_cancelled_jobs_are_reported_and_a_rerun_resumes(cluster, tmp_path):
    work = tmp_path / "wf"
    work.mkdir()
    (work / "Snakefile").write_text(FAILING_WORKFLOW)
    cmd = ["snakemake", *PROFILES]
    first = subprocess.Popen(cmd, cwd=work, env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        # cancel rule slow's job once it runs (it would sleep for 10 minutes)
        deadline = time.monotonic() + 300
        slow = None
        while slow is None:
            assert time.monotonic() < deadline, "rule slow never started running"
            assert first.poll() is None, first.communicate()[0]
            slow = next((j for j, (state, comment) in _squeue(work).items()
                         if comment == "rule_slow" and state == "RUNNING"), None)
            time.sleep(1)
        subprocess.run(["scancel", slow], check=True, timeout=30)
        output, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode != 0, output

    # both failures are reported with the rule, the SLURM state, the rule's log and SLURM's log
    jobs = {rule: jobid for jobid, rule in submitted_jobs(output).items()}
    for rule, state in (("b", "FAILED"), ("slow", "CANCELLED")):
        report = output[output.index(f"Error in rule {rule}:"):]
        report = report[:report.index("external_jobid")]
        assert f"SLURM status is: '{state}'" in report, report
        slurm_log = f".snakemake/slurm_logs/rule_{rule}/{jobs[rule]}.log"
        assert re.search(rf"log: logs/{rule}\.log, \S*{re.escape(slurm_log)}", report), report
        assert (work / slurm_log).is_file()
    assert "b: deliberate failure" in (work / "logs" / "b.log").read_text()
    assert not (work / "b.txt").exists() and not (work / "slow.txt").exists()

    # fix both causes and rerun: only b and slow run again, a is not redone
    (work / "fix_b").touch()
    (work / "fix_slow").touch()
    second = subprocess.run(cmd, cwd=work, env=_env(), capture_output=True, text=True,
                            timeout=600, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    rerun = submitted_jobs(second.stdout + second.stderr)
    assert sorted(rerun.values()) == ["b", "slow"]
    assert (work / "b.txt").read_text() == "a\n" and (work / "slow.txt").read_text() == "a\n"
    states = _squeue(work)
    assert all(states[j][0] == "COMPLETED" for j in rerun), states
