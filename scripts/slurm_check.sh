#!/usr/bin/env bash
# The Slurm example for real: starts a one-node Slurm cluster on this machine (munged,
# slurmctld, slurmd, all under a temporary directory), submits examples/slurm/reward_data.sbatch
# as a 3-task array plus the dependent merge job, waits, and compares the merged dataset with an
# unsharded prepare-reward-data run byte for byte. Installs Debian's slurm-wlm and munge when
# missing; skips (exit 0, with a message) where they cannot be installed or started.
#
#   scripts/slurm_check.sh [NANOREWARD_BINARY]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NR=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/release/nanoreward}
NR=$(cd "$(dirname "$NR")" && pwd)/$(basename "$NR")
skip() { echo "SKIP slurm check: $*"; exit 0; }
[ -x "$NR" ] || { echo "no nanoreward binary at $NR (cargo build --release first)"; exit 1; }
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || skip "slurm-wlm and munge are not installed and there is no apt-get"
    { apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 \
           && apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1; }; } \
      || skip "Debian's slurm-wlm and munge could not be installed"
fi
[ "$(id -u)" = 0 ] || skip "starting slurmd needs root here"
INPUT=$ROOT/../shared/data/tinyshakespeare/input.txt
[ -f "$INPUT" ] || skip "$INPUT is absent"

T=$(mktemp -d /tmp/nanoreward-slurm.XXXXXX)
chmod 700 "$T"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
mkdir -p state spool munge
host=$(hostname -s)
cpus=$(nproc)

# munge: a fresh key and a private socket, so a system munged (if any) is untouched.
dd if=/dev/urandom of=munge/munge.key bs=1024 count=1 2>/dev/null
chmod 400 munge/munge.key
munged --foreground --force --key-file=munge/munge.key --socket="$T/munge/sock" \
    --pid-file="$T/munge/pid" --log-file="$T/munge/log" --seed-file="$T/munge/seed" \
    > munge/out 2>&1 &
pids+=($!)

cat > slurm.conf <<CONF
ClusterName=nanoreward-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/sock
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$T/slurm.conf
sleep 1
slurmctld -D -i -f "$SLURM_CONF" > slurmctld.out 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" > slurmd.out 2>&1 &
pids+=($!)
for _ in $(seq 60); do
    sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && break
    sleep 1
done
sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' || {
    tail -5 slurmctld.log slurmd.log munge/log 2>/dev/null
    skip "the one-node cluster did not come up (logs above)"
}
echo "one-node Slurm cluster up on $host ($cpus CPUs)"

# A tiny generator, then the same reward data unsharded and through the Slurm array + merge.
head -c 30000 "$INPUT" > input.txt
"$NR" prepare --input input.txt --out-dir data > /dev/null
"$NR" train --data_dir=data --out_dir=base --n_layer=1 --n_head=2 --n_embd=32 --block_size=16 \
    --max_iters=30 --batch_size=8 --eval_interval=30 --eval_iters=2 --threads=1 > train.log
ARGS="--max_blocks 90 --samples_per_chunk 2 --seed 7"
# shellcheck disable=SC2086
"$NR" prepare-reward-data --model_path "$T/base/ckpt" --data_path "$T/input.txt" --output_dir whole \
    --threads 1 $ARGS > whole.log
export NR MODEL=$T/base/ckpt DATA=$T/input.txt OUT=$T/rd ARGS
jid=$(sbatch --parsable --array=0-2 --cpus-per-task=1 "$ROOT/examples/slurm/reward_data.sbatch")
mid=$(sbatch --parsable --dependency=afterok:"$jid" --cpus-per-task=1 "$ROOT/examples/slurm/reward_data.sbatch")
echo "submitted array job $jid (3 tasks) and merge job $mid"
for _ in $(seq 240); do
    [ -z "$(squeue -h -j "$jid,$mid" 2>/dev/null)" ] && break
    sleep 1
done
[ -z "$(squeue -h -j "$jid,$mid" 2>/dev/null)" ] || { squeue; echo "FAIL: jobs still queued after 240 s"; exit 1; }
grep -h "shard" reward-data-*.out | grep "from SLURM" | sort || true
for f in train_x.bin train_y.bin val_x.bin val_y.bin; do
    if ! cmp -s "whole/$f" "rd/$f"; then
        echo "FAIL: rd/$f (Slurm array + merge) differs from the unsharded run"
        diff "whole/$f" "rd/$f" | head -5 || true
        tail -n 20 reward-data-*.out
        exit 1
    fi
done
for f in train_metadata.txt val_metadata.txt; do
    # The metadata equal too, but for the time each was written.
    if ! diff <(grep -v '^created_at:' "whole/$f") <(grep -v '^created_at:' "rd/$f"); then
        echo "FAIL: rd/$f (Slurm array + merge) differs from the unsharded run"
        exit 1
    fi
done
echo "slurm check passed: the 3-task array + merge equals the unsharded run byte for byte (metadata but its created_at line; $(stat -c %s rd/train_x.bin) + $(stat -c %s rd/val_x.bin) bytes of tokens)"
