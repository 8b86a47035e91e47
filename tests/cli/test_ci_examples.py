"""examples/ci/: the GitHub Actions and GitLab CI `edgekit check` steps, run as written, in their shells."""

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
import yaml

from edgekit.export.tflite import convert

EXAMPLES = Path(__file__).parents[2] / "examples" / "ci"
XSD = Path(__file__).parent / "data" / "junit-ant.xsd"  # our own schema of the Ant JUnit format
pytestmark = pytest.mark.slow


def _github_step(name: str = "edgekit check") -> tuple[str, dict]:
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    job = next(iter(workflow["jobs"].values()))
    step = next(s for s in job["steps"] if s.get("name") == name)
    return step["run"], dict(job["env"])


def _gitlab_script() -> tuple[str, dict]:
    job = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())["edgekit-check"]
    lines = [line for line in job["script"] if not line.startswith("pip install")]
    assert any(line.startswith("edgekit check") for line in lines)
    return "\n".join(lines), dict(job["variables"])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_conv1d_model, mnist1d_sample):
    """A repository checkout as the CI sees it: build/model.tflite, edgekit on PATH."""
    root = tmp_path_factory.mktemp("ci")
    (root / "build").mkdir()
    (root / "ci").mkdir()
    tflite = convert(tiny_conv1d_model, "int8", representative_data=mnist1d_sample.x_train[:100], int8_io=True)
    (root / "build" / "model.tflite").write_bytes(tflite.tflite_bytes)
    return root


def _run(shell: list[str], script: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)
    assert shutil.which("edgekit", path=bin_dir), "the edgekit console script is not installed in the venv"
    full_env = {**os.environ, **{k: str(v) for k, v in env.items()}, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run([*shell, script], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300,
                          check=False)


def _junit_failures(path: Path) -> dict:
    xmlschema.XMLSchema(str(XSD)).validate(str(path))
    suite = ET.parse(path).getroot().find("testsuite")
    return {c.get("name"): c.find("failure") is not None for c in suite.findall("testcase")}


# GitHub runs `run:` with `bash --noprofile --norc -eo pipefail {0}`; GitLab runs the script lines in one shell.
SHELLS = {"github": ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"], "gitlab": ["sh", "-e", "-c"]}


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_ci_step_passes_then_fails_on_a_regression_against_the_baseline(workspace, tmp_path, ci):
    script, env = _github_step() if ci == "github" else _gitlab_script()
    cwd = tmp_path / "checkout"
    shutil.copytree(workspace, cwd)
    # first run: no baseline committed yet; the model fits the example's budgets
    first = _run(SHELLS[ci], script, env, cwd)
    assert first.returncode == 0, first.stderr
    report = json.loads((cwd / "edgekit-check.json").read_text())
    assert report["device"] == env["DEVICE"] and report["passed"] and report["baseline"] is None
    assert not any(_junit_failures(cwd / "edgekit-junit.xml").values())

    # commit that as the baseline; a model grown by more than the tolerance now fails the build (exit 3)
    (cwd / env["BASELINE"]).write_text((cwd / "edgekit-check.json").read_text())
    grown = bytearray((cwd / env["MODEL"]).read_bytes())
    grown += b"\0" * (len(grown) // 5)  # 20 % more bytes; TFLite ignores trailing data
    (cwd / env["MODEL"]).write_bytes(bytes(grown))
    second = _run(SHELLS[ci], script, env, cwd)
    assert second.returncode == 3, second.stderr
    assert "regression: flash" in second.stderr
    failures = _junit_failures(cwd / "edgekit-junit.xml")
    assert failures["flash vs baseline"] and not failures["flash budget"]
