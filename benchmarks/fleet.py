"""A fleet fit against separate fits, side by side: wall time and CPU time of the same four devices.

    .venv/bin/python benchmarks/fleet.py --out /tmp/fleet-bench              # ~15 min on 2 shared cores
    .venv/bin/python benchmarks/fleet.py --out /tmp/fleet-bench --epochs 2   # a quick run

Makes the demo teacher (edgekit.examples.mnist1d_teacher) unless --teacher DIR has one, then runs
`edgekit fit --devices fleet.yaml` once and `edgekit fit --device D` for each device, each as its own
process under `nice`, and prints wall and CPU seconds (user + sys of the child process, which background
load on shared cores disturbs far less than wall time) and each device's result in both runs.
The budgets force compression on three of the four devices (the demo teacher fits all four as it is).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

FLEET = (("pixel7", {}), ("raspberry-pi-4", {"max_latency_ms": "0.15"}), ("stm32h743", {"max_flash": "24KB"}),
         ("nrf52840", {"max_flash": "12KB", "max_latency_ms": "15"}))


def timed(cmd: list[str], log: Path) -> tuple[int, float, float]:
    """(exit code, wall s, CPU s of the child) for one command; its stderr goes to `log`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    with open(log, "w") as err:
        code = subprocess.run(["nice", "-n", "10", *cmd], stdout=subprocess.DEVNULL, stderr=err,
                              check=False).returncode
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return code, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--teacher", help="folder with teacher.h5, train.npz, val.npz (default: make one)")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    teacher = Path(args.teacher) if args.teacher else out / "demo"
    if not (teacher / "teacher.h5").exists():
        subprocess.run([sys.executable, "-m", "edgekit.examples.mnist1d_teacher", "--out", str(teacher)], check=True)
    edgekit = str(Path(sys.executable).parent / "edgekit")
    lines = ["devices:"]
    for device, budgets in FLEET:
        lines.append(f"  - device: {device}")
        lines += [f"    {k}: {v}" for k, v in budgets.items()]
    (out / "fleet.yaml").write_text("\n".join(lines) + "\n")
    common = [str(teacher / "teacher.h5"), "--data", str(teacher / "train.npz"), "--val", str(teacher / "val.npz"),
              "--epochs", str(args.epochs), "--quiet"]
    rows = [("fleet (one process)", *timed([edgekit, "fit", *common, "--devices", str(out / "fleet.yaml"),
                                             "--out", str(out / "fleet")], out / "fleet.log"))]
    for device, budgets in FLEET:
        options = [x for k, v in budgets.items() for x in (f"--{k.replace('_', '-')}", v)]
        rows.append((f"separate: {device}", *timed([edgekit, "fit", *common, "--device", device, *options,
                                                    "--out", str(out / f"separate-{device}")],
                                                   out / f"separate-{device}.log")))
    separate_wall = sum(r[2] for r in rows[1:])
    separate_cpu = sum(r[3] for r in rows[1:])
    print("| run | exit | wall s | CPU s |\n|---|---:|---:|---:|")
    for name, code, wall, cpu in rows:
        print(f"| {name} | {code} | {wall:.1f} | {cpu:.1f} |")
    print(f"| separate, total | | {separate_wall:.1f} | {separate_cpu:.1f} |")
    print(f"\nseparate / fleet: wall {separate_wall / rows[0][2]:.2f}x, CPU {separate_cpu / rows[0][3]:.2f}x")
    if rows[0][1] not in (0, 3):
        sys.exit(f"the fleet run failed (exit {rows[0][1]}): see {out / 'fleet.log'}")
    fleet = json.loads((out / "fleet" / "fleet.json").read_text())
    print(f"teacher outputs in the fleet: {fleet['teacher_outputs']}")
    for device, _ in FLEET:
        mine = json.loads((out / "fleet" / device / "report.json").read_text())
        alone_path = out / f"separate-{device}" / "report.json"
        alone = json.loads(alone_path.read_text()) if alone_path.exists() else {}
        print(f"{device}: fleet {mine['status']} {mine['final_accuracy']} {mine['budgets']['flash_bytes']['measured']}"
              f" B | separate {alone.get('status')} {alone.get('final_accuracy')} "
              f"{alone.get('budgets', {}).get('flash_bytes', {}).get('measured')} B")
    print(f"\nhost: {os.cpu_count()} CPUs (shared), load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
