"""The tutorials in examples/ run to the end on the bundled model (headless, in a scratch folder).

They step the bundled model for about 20 s in all, so they are marked slow: ``pytest --run-slow`` runs them.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


def check_tensor_model(stdout: str, folder: Path) -> None:
    difference = float(re.search(r"max \|parallel - recurrent\| = (\S+)", stdout)[1])
    assert difference < 1e-9  # the two forms agree in float64


def check_spiking_network(stdout: str, folder: Path) -> None:
    assert len(re.findall(r"K = +\d+: .* RMS logit error", stdout)) == 3
    assert (folder / "spike_raster.png").read_bytes()[:4] == b"\x89PNG"


CHECKS = {"01_tensor_model.py": check_tensor_model, "02_spiking_network.py": check_spiking_network}


def test_every_example_is_checked():
    assert sorted(CHECKS) == [p.name for p in EXAMPLES]


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    CHECKS[script.name](done.stdout, tmp_path)
