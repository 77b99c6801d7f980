#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, for the tests and for trying profiles/slurm without
# a real cluster (Debian or Ubuntu, as root).
#
#   scripts/slurm_local.sh install   apt-get install slurmctld slurmd slurm-client munge
#   scripts/slurm_local.sh start     write /etc/slurm/slurm.conf, start munged, slurmctld
#                                    and slurmd, wait until the node takes jobs
#   scripts/slurm_local.sh stop      cancel the queue, stop the daemons by the PIDs that
#                                    start recorded, remove the slurm.conf start wrote
#   scripts/slurm_local.sh status    daemons, node state, queue (exit 0 only when running)
#
# The node has no GPUs by default (SRNAS_SLURM_GPUS=N advertises N placeholder GPUs with no
# device behind them; job steps that ask for them can hang, so the tests do not use them):
# run the workflow with `--config device=cpu`, which makes no rule request a GPU.
#
# Every subcommand is idempotent. PIDs, logs, spool and state, the munge socket and the job
# completion log (jobcomp.txt: one line per finished job) live in $SRNAS_SLURM_STATE
# (default /tmp/srnas-slurm).
#
# What matters for snakemake-executor-plugin-slurm (FACTS.md section 8):
# - the config must be /etc/slurm/slurm.conf: the plugin strips SLURM_* variables, so a
#   SLURM_CONF pointing elsewhere never reaches the jobs;
# - no cgroups here (containers, CI runners): processes are tracked with
#   proctrack/linuxproc and tasks are not confined (task/none);
# - there is no accounting database, so `sacct` cannot report job states: run Snakemake
#   with `--slurm-status-command squeue`, and keep finished jobs visible to squeue
#   (MinJobAge) for longer than the plugin's polling interval.
#
# Exit codes: 0 done; 1 failed (see the message and the logs in the state dir);
# 2 usage; 3 not root; 4 cannot install (no apt-get, or apt-get failed); 5 another SLURM
# (another state dir's, or a real one) already runs on this machine.

set -euo pipefail

STATE=${SRNAS_SLURM_STATE:-/tmp/srnas-slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# written by srnas scripts/slurm_local.sh"
PACKAGES=(slurmctld slurmd slurm-client munge)
PARTITION=debug

die() { echo "slurm_local: error: $1" >&2; exit "${2:-1}"; }
say() { echo "slurm_local: $*"; }

need_root() {
    [[ $(id -u) -eq 0 ]] || die "'$1' must run as root (it installs system packages, writes /etc/slurm and runs daemons)" 3
}

installed() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
    done
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null
}

cmd_install() {
    if command -v dpkg-query >/dev/null && installed; then
        say "already installed: ${PACKAGES[*]}"
        return 0
    fi
    need_root install
    command -v apt-get >/dev/null || die "apt-get not found: install ${PACKAGES[*]} with this system's package manager" 4
    say "installing ${PACKAGES[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # Only refresh the package lists when the first attempt cannot find the packages.
    if ! apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >"${TMPDIR:-/tmp}/srnas-slurm-apt.log" 2>&1; then
        apt-get update -q >>"${TMPDIR:-/tmp}/srnas-slurm-apt.log" 2>&1 \
            && apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>"${TMPDIR:-/tmp}/srnas-slurm-apt.log" 2>&1 \
            || { tail -n 20 "${TMPDIR:-/tmp}/srnas-slurm-apt.log" >&2;
                 die "apt-get could not install ${PACKAGES[*]} (log: ${TMPDIR:-/tmp}/srnas-slurm-apt.log)" 4; }
    fi
    installed || die "packages installed but slurmctld/slurmd/sbatch/munged are not on PATH" 4
    say "installed"
}

# pid_of NAME: the live PID recorded for daemon NAME whose command is NAME, else nothing.
pid_of() {
    local file="$STATE/$1.pid" pid
    [[ -s $file ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [[ -n $pid && -r /proc/$pid/comm ]] || return 1
    # the PID must still belong to that daemon (PIDs are reused)
    [[ $(cat "/proc/$pid/comm") == "$1"* ]] || return 1
    echo "$pid"
}

running() { pid_of munged >/dev/null && pid_of slurmctld >/dev/null && pid_of slurmd >/dev/null; }

write_conf() {
    if [[ -e $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
        die "$CONF exists and was not written by this script: refusing to overwrite a real cluster's configuration"
    fi
    if [[ -e /etc/slurm/gres.conf ]] && ! grep -qF "$MARKER" /etc/slurm/gres.conf; then
        die "/etc/slurm/gres.conf exists and was not written by this script: refusing to overwrite it"
    fi
    local node memory cpus sockets cores threads
    # The node line as slurmd itself measures this machine (hostname, CPUs, topology,
    # memory): a node whose slurm.conf line promises more than that is drained.
    node=$(slurmd -C | head -n 1)
    [[ $node == NodeName=* ]] || die "slurmd -C did not describe this machine: $node"
    local name=${node%% *}; name=${name#NodeName=}
    memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node")
    sockets=$(sed -n 's/.*SocketsPerBoard=\([0-9]*\).*/\1/p' <<<"$node")
    cores=$(sed -n 's/.*CoresPerSocket=\([0-9]*\).*/\1/p' <<<"$node")
    threads=$(sed -n 's/.*ThreadsPerCore=\([0-9]*\).*/\1/p' <<<"$node")
    local gpus=${SRNAS_SLURM_GPUS:-0} gres=""
    [[ $gpus =~ ^[0-9]+$ ]] || die "SRNAS_SLURM_GPUS must be a number, not '$gpus'"
    mkdir -p /etc/slurm
    if ((gpus > 0)); then
        gres=" Gres=gpu:$gpus"
        # slurmd counts GPUs by their device files: empty placeholder files, one per GPU
        mkdir -p "$STATE/gpus"
        local i
        for ((i = 0; i < gpus; i++)); do : >"$STATE/gpus/gpu$i"; done
        printf '%s\nNodeName=%s Name=gpu File=%s\n' "$MARKER: placeholder GPUs, no devices." \
            "$name" "$STATE/gpus/gpu[0-$((gpus - 1))]" >/etc/slurm/gres.conf
    elif [[ -e /etc/slurm/gres.conf ]] && grep -qF "$MARKER" /etc/slurm/gres.conf; then
        rm -f /etc/slurm/gres.conf
    fi
    cat >"$CONF.tmp" <<EOF
$MARKER: a one-node cluster on localhost for tests.
# Stop it with scripts/slurm_local.sh stop (which removes this file).
ClusterName=srnas-local
SlurmctldHost=$name(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
CredType=cred/munge
MpiDefault=none
# No cgroups: track job processes through their parent PIDs, do not confine tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
# No accounting database (so no sacct: use --slurm-status-command squeue). Finished jobs stay
# visible to squeue and scontrol for MinJobAge seconds (a day: the whole of a test run) and
# are appended to JobCompLoc.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.txt
MinJobAge=86400
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$name NodeAddr=127.0.0.1 CPUs=$cpus SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$memory$gres State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2; shift 2
    local i
    for ((i = 0; i < limit * 2; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    return 1
}

node_idle() { [[ $(sinfo -h -N -o %T 2>/dev/null | head -n 1) == idle* ]]; }

cmd_start() {
    need_root start
    if running; then
        say "already running (state in $STATE)"
        return 0
    fi
    installed || die "SLURM is not installed: run '$0 install' first"
    # A partial earlier start (one daemon died): stop what is left, then start clean.
    stop_daemons quiet
    local other
    for other in slurmctld slurmd; do
        if pgrep -x "$other" >/dev/null; then
            die "a $other not started from $STATE is running (PID $(pgrep -x "$other" | tr '\n' ' ')): stop it first (SRNAS_SLURM_STATE=<its state dir> $0 stop)" 5
        fi
    done
    mkdir -p "$STATE/slurmctld" "$STATE/slurmd"
    chmod 755 "$STATE"
    install -d -o munge -g munge -m 0755 "$STATE/munge"
    setpriv --reuid=munge --regid=munge --init-groups test -w "$STATE/munge" \
        || die "the munge user cannot reach $STATE/munge: use a state dir whose parent folders everyone may enter (SRNAS_SLURM_STATE)"
    if [[ ! -s /etc/munge/munge.key ]]; then
        command -v mungekey >/dev/null && mungekey --create --keyfile=/etc/munge/munge.key \
            || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    write_conf
    # a start that fails half-way stops what it started
    trap 'echo "slurm_local: start failed: stopping what was started" >&2; stop_daemons quiet' EXIT

    # munged as the munge user, with its socket, PID and log in the state dir.
    setpriv --reuid=munge --regid=munge --init-groups \
        munged --socket="$STATE/munge/munge.socket" --pid-file="$STATE/munge/munged.pid" \
        --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed" \
        || die "munged did not start (log: $STATE/munge/munged.log)"
    wait_for 10 munged test -s "$STATE/munge/munged.pid" || die "munged wrote no PID file"
    cp "$STATE/munge/munged.pid" "$STATE/munged.pid"
    pid_of munged >/dev/null || die "munged is not running (log: $STATE/munge/munged.log)"

    # -c: a fresh cluster every time (no jobs recovered from an earlier run).
    slurmctld -c || die "slurmctld did not start (log: $STATE/slurmctld.log)"
    wait_for 20 slurmctld pid_of slurmctld || die "slurmctld is not running (log: $STATE/slurmctld.log)"
    wait_for 30 "slurmctld answers" scontrol ping || die "slurmctld does not answer (log: $STATE/slurmctld.log)"
    slurmd || die "slurmd did not start (log: $STATE/slurmd.log)"
    wait_for 20 slurmd pid_of slurmd || die "slurmd is not running (log: $STATE/slurmd.log)"
    if ! wait_for 60 "node idle" node_idle; then
        sinfo -N -l >&2 || true
        die "the node did not become idle within 60 s (logs: $STATE/slurmctld.log, $STATE/slurmd.log)"
    fi
    trap - EXIT
    say "running: node $(sinfo -h -N -o '%N %c CPUs %m MB'), partition $PARTITION (state in $STATE)"
    say "PIDs: munged $(pid_of munged), slurmctld $(pid_of slurmctld), slurmd $(pid_of slurmd)"
}

stop_one() {  # stop_one NAME: TERM, wait up to 15 s, then KILL
    local pid i
    pid=$(pid_of "$1") || { rm -f "$STATE/$1.pid"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        [[ -d /proc/$pid ]] || break
        sleep 0.5
    done
    if [[ -d /proc/$pid ]]; then
        echo "slurm_local: $1 (PID $pid) ignored TERM: killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    [[ ${2:-} == quiet ]] || say "stopped $1 (PID $pid)"
    rm -f "$STATE/$1.pid"
}

stop_daemons() {
    stop_one slurmd "${1:-}"
    stop_one slurmctld "${1:-}"
    stop_one munged "${1:-}"
}

cmd_stop() {
    need_root stop
    if pid_of slurmctld >/dev/null && command -v squeue >/dev/null; then
        # Cancel what is still queued or running (this cluster runs only this user's jobs).
        local jobs
        jobs=$(squeue -h -t PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED -o %i 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            wait_for 20 "queue drained" bash -c '[[ -z $(squeue -h -t PENDING,RUNNING,CONFIGURING,COMPLETING -o %i) ]]' || true
        fi
    fi
    stop_daemons
    local file
    for file in "$CONF" /etc/slurm/gres.conf; do
        if [[ -e $file ]] && grep -qF "$MARKER" "$file"; then
            rm -f "$file"
        fi
    done
    say "stopped"
}

cmd_status() {
    local name pid ok=0
    for name in munged slurmctld slurmd; do
        if pid=$(pid_of "$name"); then
            say "$name running (PID $pid)"
        else
            say "$name not running"; ok=1
        fi
    done
    if [[ $ok -eq 0 ]]; then
        sinfo -N -o '%N %T %c %m %P' || ok=1
        squeue -o '%i %j %T %M %k' || ok=1
    fi
    return $ok
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
