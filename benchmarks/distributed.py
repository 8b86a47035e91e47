"""`edgekit distill` in one process vs `--strategy multiworker` over 2 local worker processes: time and accuracy.

    .venv/bin/python benchmarks/distributed.py                      # 3 seeds, 10 epochs, results in build/
    .venv/bin/python benchmarks/distributed.py --seeds 1 --epochs 4 --json out.json

The example MNIST-1D teacher (edgekit.examples.mnist1d_teacher, trained once with its defaults into
build/distributed-bench/) is distilled into the teacher at half width (about 25 % of its MACs; the teacher's
L1-largest channels as the starting point), with the same command, epochs, batch size (64, global) and
seed each time:
  single       `edgekit distill ... --json` in one process
  2 workers    the same command in two processes on this host, TF_CONFIG naming two localhost ports
               (worker 0 is the chief and writes the student; worker 1 writes nothing)
Wall time is the whole command (Python + TensorFlow start, data loading, teacher logits, training,
saving), from launch until the last worker exits; CPU time is user + system of all its processes. Accuracy
is the student's top-1 on the validation split (as the command reports it) and on the test split (the saved
student file, run in tf_keras).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from edgekit.distill.strategy import local_tf_configs

EDGEKIT = [sys.executable, "-m", "edgekit.cli.main"]
WIDTH = 0.5
TIMEOUT_S = 3600


def teacher_folder(folder: Path) -> Path:
    if not (folder / "teacher.h5").exists():
        subprocess.run([sys.executable, "-m", "edgekit.examples.mnist1d_teacher", "--out", str(folder)], check=True,
                       cwd=ROOT)
    return folder


def distill_command(folder: Path, out: Path, epochs: int, seed: int) -> list[str]:
    return [*EDGEKIT, "distill", str(folder / "teacher.h5"), "--data", str(folder / "train.npz"), "--val",
            str(folder / "val.npz"), "--width", str(WIDTH), "--epochs", str(epochs), "--seed", str(seed),
            "--json", "-q", "--out", str(out)]


def run(commands: list[tuple[list[str], dict]]) -> tuple[float, float, list[dict]]:
    """Start every command at once; (seconds until the last one exits, CPU seconds of all, their JSON outputs)."""
    import resource

    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for cmd, env in commands]
    outputs = [proc.communicate(timeout=TIMEOUT_S) for proc in procs]
    seconds = time.perf_counter() - began
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    for proc, (_, err) in zip(procs, outputs):
        if proc.returncode != 0:
            raise SystemExit(f"a distill run failed (exit {proc.returncode}): {err.strip().splitlines()[-1:]}")
    return seconds, cpu_s, [json.loads(out) for out, _ in outputs]


def test_accuracy(model_path: Path, folder: Path) -> float:
    from edgekit.model_io import load_model

    model = load_model(str(model_path)).keras_model
    with np.load(folder / "test.npz") as test:
        return float(np.mean(np.argmax(model.predict(test["x"], verbose=0), axis=1) == test["y"]))


def one_seed(folder: Path, work: Path, epochs: int, seed: int) -> dict:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    single_out = work / f"single_s{seed}.h5"
    single_s, single_cpu_s, (single,) = run([(distill_command(folder, single_out, epochs, seed), env)])
    workers = []
    for index, config in enumerate(local_tf_configs(2)):
        cmd = distill_command(folder, work / f"worker{index}_s{seed}.h5", epochs, seed) + ["--strategy", "multiworker"]
        workers.append((cmd, {**env, "TF_CONFIG": config}))
    multi_s, multi_cpu_s, (chief, other) = run(workers)
    if other["student"]["path"] is not None or (work / f"worker1_s{seed}.h5").exists():
        raise SystemExit("worker 1 wrote a student: only the chief may write")
    return {
        "seed": seed,
        "single": {"seconds": single_s, "cpu_seconds": single_cpu_s, "val_accuracy": single["student"]["accuracy"],
                   "test_accuracy": test_accuracy(single_out, folder), "best_epoch": single["best_epoch"]},
        "two_workers": {"seconds": multi_s, "cpu_seconds": multi_cpu_s, "val_accuracy": chief["student"]["accuracy"],
                        "test_accuracy": test_accuracy(work / f"worker0_s{seed}.h5", folder),
                        "best_epoch": chief["best_epoch"]},
        "teacher_val_accuracy": single["teacher"]["accuracy"],
        "macs_ratio": single["student"]["macs_ratio"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--folder", type=Path, default=ROOT / "build" / "distributed-bench")
    parser.add_argument("--json", type=Path, help="Also write the rows here.")
    args = parser.parse_args()
    folder = teacher_folder(args.folder)
    rows = []
    for seed in range(args.seeds):
        row = one_seed(folder, folder, args.epochs, seed)
        rows.append(row)
        print(f"seed {seed}: " + " | ".join(
            f"{kind} {row[kind]['seconds']:.1f} s (cpu {row[kind]['cpu_seconds']:.0f} s) val "
            f"{row[kind]['val_accuracy']:.4f} test {row[kind]['test_accuracy']:.4f}"
            for kind in ("single", "two_workers")), flush=True)
    for kind in ("single", "two_workers"):
        values = {k: [r[kind][k] for r in rows] for k in ("seconds", "cpu_seconds", "val_accuracy", "test_accuracy")}
        print(f"{kind:12} " + "  ".join(f"{k} mean {np.mean(v):.4f} (min {min(v):.4f}, max {max(v):.4f})"
                                         for k, v in values.items()))
    if args.json:
        args.json.write_text(json.dumps({"epochs": args.epochs, "width": WIDTH, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
