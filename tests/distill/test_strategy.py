"""--strategy: TF_CONFIG parsing and its errors, MirroredStrategy over 2 logical CPUs, and two real worker
processes of `edgekit distill --strategy multiworker` on localhost against a single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import main
from edgekit.distill.strategy import STRATEGIES, is_chief, local_tf_configs, parse_strategy, worker_role
from edgekit.errors import BadInputError

EDGEKIT = [sys.executable, "-m", "edgekit.cli.main"]
# Gradients are averaged over the replicas and each global batch is split between them, so a distributed run
# takes the single-process run's optimizer steps; only float summation order differs. 0.05 = 4 of the 80
# validation samples: far above that reordering, far below what a wrong split or summed gradients give.
ACCURACY_TOLERANCE = 0.05
WORKER_TIMEOUT_S = 300  # a hung collective fails the test instead of hanging CI


def tf_config(ports, index: int, chief: bool = False) -> str:
    hosts = [f"localhost:{p}" for p in ports]
    cluster = {"chief": hosts[:1], "worker": hosts[1:]} if chief else {"worker": hosts}
    task = ({"type": "chief", "index": 0} if index == 0 else {"type": "worker", "index": index - 1}) if chief \
        else {"type": "worker", "index": index}
    return json.dumps({"cluster": cluster, "task": task})


# ----------------------------------------------------------------------------- parsing, no TensorFlow


def test_strategy_names_parse_and_unknown_ones_are_a_one_line_error():
    assert [parse_strategy(n) for n in (None, "none", " Mirrored ", "multiworker")] == [
        "none", "none", "mirrored", "multiworker"]
    assert STRATEGIES == ("none", "mirrored", "multiworker")
    with pytest.raises(BadInputError, match=r"--strategy 'tpu': unknown; use one of none, mirrored, multiworker"):
        parse_strategy("tpu")


def test_the_chief_is_the_chief_task_else_worker_0():
    ports = [1111, 2222, 3333]
    roles = [worker_role({"TF_CONFIG": tf_config(ports, i)}) for i in range(3)]
    assert [(r.task_type, r.task_index, r.n_workers, r.is_chief) for r in roles] == [
        ("worker", 0, 3, True), ("worker", 1, 3, False), ("worker", 2, 3, False)]
    with_chief = [worker_role({"TF_CONFIG": tf_config(ports, i, chief=True)}) for i in range(3)]
    assert [(r.task_type, r.task_index, r.is_chief) for r in with_chief] == [
        ("chief", 0, True), ("worker", 0, False), ("worker", 1, False)]
    assert is_chief() is True  # no strategy active in this process: everyone writes


@pytest.mark.parametrize("value, reason", [
    (None, "is not set"),
    ("{'cluster': 1}", "is not JSON"),
    ('{"cluster": {"worker": ["localhost:1"]}}', 'no "task" object'),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', '"host:port"'),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 1}}', "is not one of"),
    ('{"cluster": {"ps": ["localhost:1"]}, "task": {"type": "ps", "index": 0}}', 'at least one "worker"'),
])
def test_bad_tf_config_is_a_one_line_error_naming_the_variable_and_the_expected_json(value, reason):
    with pytest.raises(BadInputError) as err:
        worker_role({} if value is None else {"TF_CONFIG": value})
    message = str(err.value)
    assert message.startswith("TF_CONFIG ") and reason in message and "\n" not in message
    assert '"task": {"type": "worker", "index": 0}' in message  # shows what to set


def test_only_the_chief_gets_the_real_output_path_the_others_a_private_folder_removed_after(tmp_path, monkeypatch):
    from edgekit.distill.strategy import chief_output

    class MultiWorkerMirroredStrategy:  # is_chief reads TF_CONFIG only for a multi-worker strategy
        pass

    out = tmp_path / "fit-out"
    monkeypatch.setenv("TF_CONFIG", tf_config([1111, 2222], 1))
    with chief_output(out, MultiWorkerMirroredStrategy()) as target:
        private = Path(target)
        assert private.name == "fit-out" and tmp_path not in private.parents
        private.mkdir()
        (private / "model.tflite").write_bytes(b"x")
    assert not private.parent.exists() and not out.exists()
    monkeypatch.setenv("TF_CONFIG", tf_config([1111, 2222], 0))
    with chief_output(out, MultiWorkerMirroredStrategy()) as target:
        assert target == out
    with chief_output(out, None) as target:  # no strategy: everyone is the chief
        assert target == out


def test_a_lost_peer_becomes_one_line_naming_the_worker_only_under_multiworker(monkeypatch):
    import edgekit.distill.strategy as strategy_mod

    class UnavailableError(Exception):  # the name TensorFlow's collective ops raise when a peer is gone
        pass

    lost = UnavailableError("{{function_node __wrapped__CollectiveReduceV2}} Collective ops is aborted by: Error "
                            "reported from /job:worker/task:0: The following tasks are unhealthy (stopped sending "
                            "heartbeats):\n/job:worker/replica:0/task:1\nThe tasks have crashed.")
    assert strategy_mod.lost_worker_error(lost) is None  # no multi-worker run: left alone
    monkeypatch.setattr(strategy_mod, "_active_name", "multiworker")
    error = strategy_mod.lost_worker_error(lost)
    assert isinstance(error, BadInputError) and "(lost worker 1)" in str(error) and "restart every worker" in str(error)
    assert strategy_mod.lost_worker_error(ValueError("unhealthy")) is None  # only TF's peer errors


def test_cli_multiworker_without_tf_config_exits_2_with_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 3), np.float32))
    result = CliRunner().invoke(main, ["distill", str(tmp_path / "t.h5"), "--data", str(tmp_path / "d.npz"),
                                       "--width", "0.5", "--out", str(tmp_path / "s.h5"), "--strategy", "multiworker"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "TF_CONFIG is not set" in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "s.h5").exists()


# ----------------------------------------------------------------------------- real distributed training


@pytest.mark.slow
def test_mirrored_over_two_cpus_trains_like_one_process_and_copies_weights_back():
    script = Path(__file__).with_name("mirrored_worker.py")
    done = subprocess.run([sys.executable, str(script), "4"], check=False, capture_output=True, text=True,
                          timeout=WORKER_TIMEOUT_S, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["replicas"] == 2
    single, mirrored = figures["students"]["none"], figures["students"]["mirrored"]
    assert single["initial"] == pytest.approx(mirrored["initial"])  # same starting student, same data
    assert mirrored["reported"] > mirrored["initial"] + 0.2  # it learned
    assert abs(mirrored["reported"] - single["reported"]) <= ACCURACY_TOLERANCE
    # the caller's student holds the trained weights (not the copy under the strategy only)
    assert mirrored["measured"] == pytest.approx(mirrored["reported"], abs=1e-6)
    assert figures["teacher_unchanged"]
    assert figures["fine_tune"]["trained_a_replica"] and figures["fine_tune"]["after"] > figures["fine_tune"][
        "before"] + 0.1
    assert figures["qat"]["mirrored"] and figures["qat"]["accuracy"] >= figures["qat"]["teacher"] - 0.05


@pytest.fixture(scope="module")
def distill_files(tmp_path_factory, mnist1d_sample):
    from edgekit._tf import tf_keras
    from edgekit.examples.mnist1d_teacher import build_teacher
    from edgekit.model_io import save_model

    keras = tf_keras()
    folder = tmp_path_factory.mktemp("strategy")
    keras.utils.set_random_seed(0)
    teacher = build_teacher(width=16, depth=3)
    teacher.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(mnist1d_sample.x_train, mnist1d_sample.y_train, epochs=6, batch_size=32, verbose=0)
    save_model(teacher, folder / "teacher.h5")
    np.savez(folder / "train.npz", x=mnist1d_sample.x_train, y=mnist1d_sample.y_train)
    np.savez(folder / "val.npz", x=mnist1d_sample.x_val, y=mnist1d_sample.y_val)
    return folder


@pytest.mark.slow
def test_two_worker_processes_match_a_single_process_run_and_only_the_chief_writes(distill_files, tmp_path):
    from edgekit.model_io import load_model
    from edgekit.workflows.distill import distill_model

    folder = distill_files
    options = {"width": 0.5, "epochs": 3, "seed": 0}
    common = ["distill", folder / "teacher.h5", "--data", folder / "train.npz", "--val", folder / "val.npz",
              *[arg for key, value in options.items() for arg in (f"--{key}", value)], "--json", "-q"]
    configs = local_tf_configs(2)
    procs = []
    try:
        for index in range(2):  # the same command on each worker, as on a cluster; their own --out to tell apart
            procs.append(subprocess.Popen(
                [*EDGEKIT, *map(str, common), "--out", str(tmp_path / f"worker{index}.h5"), "--strategy",
                 "multiworker"], env={**os.environ, "TF_CONFIG": configs[index], "CUDA_VISIBLE_DEVICES": ""},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        # the single-process reference, in this process while the workers run: same data, options and seed
        single = distill_model(str(folder / "teacher.h5"), str(folder / "train.npz"), val=str(folder / "val.npz"),
                               **options).student_accuracy
        outputs = [proc.communicate(timeout=WORKER_TIMEOUT_S) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-2000:]
    chief, other = (json.loads(out) for out, _ in outputs)
    assert (tmp_path / "worker0.h5").exists() and not (tmp_path / "worker1.h5").exists()
    assert chief["student"]["path"] == str(tmp_path / "worker0.h5") and other["student"]["path"] is None
    assert chief["student"]["accuracy"] == pytest.approx(other["student"]["accuracy"])  # metrics are all-reduced
    assert abs(chief["student"]["accuracy"] - single) <= ACCURACY_TOLERANCE
    assert chief["student"]["accuracy"] > chief["student"]["initial_accuracy"]
    # the file holds the trained weights: its accuracy is the one reported
    with np.load(folder / "val.npz") as val:
        saved = load_model(str(tmp_path / "worker0.h5")).keras_model
        accuracy = float(np.mean(np.argmax(saved.predict(val["x"], verbose=0), axis=1) == val["y"]))
    assert accuracy == pytest.approx(chief["student"]["accuracy"], abs=1e-6)


@pytest.mark.slow
def test_a_killed_worker_stops_the_other_with_one_line_and_exit_2(distill_files, tmp_path):
    import time

    folder = distill_files
    configs = local_tf_configs(2)
    procs, logs = [], [tmp_path / "worker0.log", tmp_path / "worker1.log"]
    try:
        for index in range(2):
            with open(logs[index], "w") as log:
                procs.append(subprocess.Popen(
                    [*EDGEKIT, "distill", str(folder / "teacher.h5"), "--data", str(folder / "train.npz"), "--width",
                     "0.5", "--epochs", "500", "--out", str(tmp_path / f"w{index}.h5"), "--strategy", "multiworker"],
                    env={**os.environ, "TF_CONFIG": configs[index], "CUDA_VISIBLE_DEVICES": ""},
                    stdout=subprocess.DEVNULL, stderr=log))
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        while "epoch 1/" not in logs[0].read_text() and time.monotonic() < deadline and procs[0].poll() is None:
            time.sleep(0.5)
        assert "epoch 1/" in logs[0].read_text(), logs[0].read_text()[-2000:]  # training, in collective steps
        procs[1].kill()
        procs[0].wait(timeout=WORKER_TIMEOUT_S)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    text = logs[0].read_text()
    assert procs[0].returncode == 2, text[-2000:]
    last = text.strip().splitlines()[-1]
    assert last.startswith("edgekit: error: --strategy multiworker: a worker") and "restart every worker" in last
    assert "Traceback" not in text and not (tmp_path / "w0.h5").exists()


@pytest.mark.parametrize("chief", [False, True])
def test_local_cluster_configs_give_one_chief_and_distinct_free_ports(chief):
    configs = local_tf_configs(3, chief=chief)
    roles = [worker_role({"TF_CONFIG": c}) for c in configs]
    assert [r.is_chief for r in roles] == [True, False, False]
    assert all(r.n_workers == 3 for r in roles)
    cluster = json.loads(configs[0])["cluster"]
    hosts = [h for group in cluster.values() for h in group]
    assert len(set(hosts)) == 3 and all(json.loads(c)["cluster"] == cluster for c in configs)
