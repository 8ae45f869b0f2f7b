#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for trying the SLURM profile and for the tests.
#
#   scripts/local_slurm.sh start [STATE_DIR]   install (if needed), configure, start, wait until idle
#   scripts/local_slurm.sh stop  [STATE_DIR]   stop exactly the daemons `start` started
#
# STATE_DIR (default .local_slurm/ in the repository) holds everything the cluster owns:
# slurm.conf, the munge key and socket, spool and state folders, logs and the daemons' pid
# files. While it runs, SLURM's default configuration path /etc/slurm/slurm.conf links to
# STATE_DIR/slurm.conf (only if nothing else is there), so clients find it with or without
#   export SLURM_CONF=STATE_DIR/slurm.conf
# The node has the machine's CPUs and memory (as `slurmd -C` reads them) and one partition,
# `local`; a GPU gres line is written only when NVIDIA GPUs exist. There is no accounting
# database: `sacct` does not work, query job states with `squeue` (MinJobAge keeps finished
# jobs visible for an hour).
#
# Installing needs apt and root (or passwordless sudo): the Debian/Ubuntu packages
# slurm-wlm and munge. The daemons run as root (SlurmUser=root), so starting needs root.
# Exit status 3: SLURM cannot be installed or run here (the reason is printed); 1: it
# failed to come up.
set -euo pipefail

PACKAGES="slurm-wlm munge"
SYSTEM_CONF="/etc/slurm/slurm.conf"
PARTITION="local"
REPO="$(cd "$(dirname "$0")/.." && pwd)"

usage() {
    echo "usage: $0 start|stop [STATE_DIR]" >&2
    exit 2
}

[ $# -ge 1 ] && [ $# -le 2 ] || usage
ACTION="$1"
STATE="${2:-$REPO/.local_slurm}"
if [ "$ACTION" = start ]; then
    mkdir -p "$STATE"
elif [ ! -d "$STATE" ]; then
    echo "local_slurm: no cluster state in $STATE; nothing to stop"
    exit 0
fi
STATE="$(cd "$STATE" && pwd -P)"  # absolute: daemons and pid checks name it in full

fail() {
    echo "local_slurm: $*" >&2
    exit 1
}

unavailable() {
    echo "local_slurm: $*" >&2
    exit 3
}

# --- installing -------------------------------------------------------------------------

have_slurm() {
    command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
        && command -v sbatch >/dev/null 2>&1 && command -v munged >/dev/null 2>&1
}

install_slurm() {
    have_slurm && return 0
    local sudo
    if [ "$(id -u)" -eq 0 ]; then
        sudo=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo="sudo -n"
    else
        unavailable "SLURM is not installed and cannot be installed here (not root, no passwordless sudo); install: $PACKAGES"
    fi
    command -v apt-get >/dev/null 2>&1 || unavailable "SLURM is not installed and apt-get is missing; install: $PACKAGES"
    echo "local_slurm: installing $PACKAGES" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq || unavailable "apt-get update failed (no package index reachable?); install: $PACKAGES"
    $sudo apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null \
        || unavailable "apt-get install $PACKAGES failed"
    have_slurm || fail "installed $PACKAGES but slurmctld, slurmd, sbatch or munged is still missing"
}

# --- pid files --------------------------------------------------------------------------

# The pid in FILE if that process is alive, is PROGRAM and was started with the state
# folder DIR (default: this one) on its command line (a recycled pid is not ours).
live_pid() {
    local file="$1" program="$2" dir="${3:-$STATE}" pid argv
    [ -s "$file" ] || return 1
    pid="$(tr -dc '0-9' <"$file")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    argv="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
    [ "$(basename "${argv%% *}")" = "$program" ] || return 1
    case "$argv" in
        *[\ =]"$dir/"*) echo "$pid" ;;
        *) return 1 ;;
    esac
}

stop_daemon() {
    local file="$1" program="$2" pid
    if ! pid="$(live_pid "$file" "$program")"; then
        rm -f "$file"
        return 0
    fi
    kill "$pid"
    for _ in $(seq 100); do
        [ -d "/proc/$pid" ] || break
        sleep 0.1
    done
    if [ -d "/proc/$pid" ]; then
        echo "local_slurm: $program ($pid) ignored SIGTERM for 10 s; killing it" >&2
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

# --- configuration ----------------------------------------------------------------------

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

gpu_devices() {
    ls /dev/nvidia[0-9]* 2>/dev/null | grep -E '/nvidia[0-9]+$' || true
}

write_config() {
    local host node gpus gres_line=""
    host="$(hostname -s)"
    # "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 ... RealMemory=24105": the machine as slurmd sees it.
    node="$(slurmd -C | head -1)"
    case "$node" in
        NodeName=*) ;;
        *) fail "slurmd -C did not describe this machine: $node" ;;
    esac
    gpus="$(gpu_devices)"
    if [ -n "$gpus" ]; then
        gres_line="GresTypes=gpu"
        node="$node Gres=gpu:$(echo "$gpus" | wc -l)"
        echo "$gpus" | sed 's/^/Name=gpu File=/' >"$STATE/gres.conf"
    fi
    cat >"$STATE/slurm.conf" <<CONF
# Written by scripts/local_slurm.sh: a one-node cluster on $host, state in $STATE.
ClusterName=rlopt-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible to squeue (the only status query without accounting).
MinJobAge=3600
# A request no node of the partition can ever meet is refused at submission, not left pending.
EnforcePartLimits=ALL
SlurmdTimeout=60
$gres_line
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

# --- the configuration at SLURM's default path ------------------------------------------

# Snakemake's SLURM job step runs `srun` with every SLURM_* variable removed, SLURM_CONF
# included, so clients inside jobs read the default path: it links to this cluster's file
# while the cluster runs. A file there that this script did not link is never touched.
link_system_config() {
    local target
    if [ -L "$SYSTEM_CONF" ]; then
        target="$(readlink "$SYSTEM_CONF")"
        if [ "$target" != "$STATE/slurm.conf" ] \
            && live_pid "$(dirname "$target")/slurmctld.pid" slurmctld "$(dirname "$target")" >/dev/null; then
            fail "another local cluster ($(dirname "$target")) is running; stop it first"
        fi
        rm -f "$SYSTEM_CONF"
    elif [ -e "$SYSTEM_CONF" ]; then
        fail "$SYSTEM_CONF exists (this machine's own SLURM); use that cluster instead"
    fi
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    ln -s "$STATE/slurm.conf" "$SYSTEM_CONF"
}

unlink_system_config() {
    if [ -L "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" = "$STATE/slurm.conf" ]; then
        rm -f "$SYSTEM_CONF"
    fi
}

# --- start and stop ---------------------------------------------------------------------

start_munge() {
    mkdir -p "$STATE/munge"
    chmod 755 "$STATE/munge"  # munged: the socket's folder must be searchable by all
    if [ ! -s "$STATE/munge/munge.key" ]; then
        (umask 077 && head -c 1024 /dev/urandom >"$STATE/munge/munge.key")
    fi
    # --force: run although a parent folder (e.g. a private temporary one) keeps other
    # users from the socket; every client of this cluster is root.
    munged --key-file="$STATE/munge/munge.key" --socket="$STATE/munge/munge.socket" \
        --pid-file="$STATE/munged.pid" --log-file="$STATE/log/munged.log" \
        --seed-file="$STATE/munge/munged.seed" --force \
        || fail "munged did not start; see $STATE/log/munged.log"
}

wait_until_idle() {
    local state=""
    for _ in $(seq 120); do
        state="$(sinfo --noheader --format=%t 2>/dev/null | head -1 || true)"
        case "$state" in  # "down*" (not registered yet): keep waiting
            idle | mix | alloc) return 0 ;;
            drain* | inval* | fail*)
                fail "the node came up $state: $(scontrol show node 2>/dev/null | grep -o 'Reason=.*'); logs in $STATE/log" ;;
        esac
        sleep 0.5
    done
    fail "the node is not idle after 60 s (state: ${state:-unknown}); logs in $STATE/log"
}

start() {
    install_slurm
    [ "$(id -u)" -eq 0 ] || unavailable "the daemons run as root (SlurmUser=root); run start as root"
    if live_pid "$STATE/slurmctld.pid" slurmctld >/dev/null || live_pid "$STATE/slurmd.pid" slurmd >/dev/null \
        || live_pid "$STATE/munged.pid" munged >/dev/null; then
        fail "a cluster from $STATE is already running; stop it first: $0 stop $STATE"
    fi
    mkdir -p "$STATE/ctld" "$STATE/spool" "$STATE/log"
    chmod 755 "$STATE"
    write_config
    export SLURM_CONF="$STATE/slurm.conf"
    # Whatever started before a failure is stopped again.
    trap 'stop >/dev/null' EXIT
    link_system_config
    start_munge
    # -c: no jobs or node states from an earlier run of this folder.
    slurmctld -c -f "$SLURM_CONF" || fail "slurmctld did not start; see $STATE/log/slurmctld.log"
    slurmd -f "$SLURM_CONF" || fail "slurmd did not start; see $STATE/log/slurmd.log"
    wait_until_idle
    trap - EXIT
    echo "local_slurm: one-node cluster up (partition '$PARTITION'); use it with:"
    echo "export SLURM_CONF=$SLURM_CONF"
}

stop() {
    # This cluster's jobs first (SLURM_CONF selects it), so none outlives slurmd.
    if [ -f "$STATE/slurm.conf" ] && live_pid "$STATE/slurmctld.pid" slurmctld >/dev/null; then
        export SLURM_CONF="$STATE/slurm.conf"
        scancel --quiet --user "$(id -un)" 2>/dev/null || true
        for _ in $(seq 100); do
            [ -z "$(squeue --noheader --states=PENDING,RUNNING,COMPLETING 2>/dev/null)" ] && break
            sleep 0.1
        done
    fi
    # Reverse order: slurmd, slurmctld, munged; each only if its pid file names it.
    stop_daemon "$STATE/slurmd.pid" slurmd
    stop_daemon "$STATE/slurmctld.pid" slurmctld
    stop_daemon "$STATE/munged.pid" munged
    unlink_system_config
    echo "local_slurm: stopped the cluster of $STATE"
}

case "$ACTION" in
    start) start ;;
    stop) stop ;;
    *) usage ;;
esac
