"""The tutorials in examples/ are notebooks, and they are tests.

Each notebook is executed from a clean kernel (nbclient) running this interpreter, headless, in a scratch folder;
any error fails it, and every claim a notebook states is asserted in a cell next to the number that backs it. They
step the bundled model for about half a minute each (more on a busy machine), so they are marked slow:
``pytest --run-slow`` runs them. Their outputs are not committed, so that diffs stay readable: the default suite
checks that every notebook is stripped.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat (the test extra) is not installed")

NOTEBOOKS = sorted((Path(__file__).parent.parent / "examples").glob("*.ipynb"))


def test_the_tutorials_are_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["01_tensor_model.ipynb", "02_graph_network.ipynb", "03_spike_mode.ipynb",
                                          "04_structure.ipynb", "05_working_memory.ipynb", "06_ecosystem.ipynb"]
    assert not list(NOTEBOOKS[0].parent.glob("*.py"))  # the notebooks replace the scripts


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_are_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for k, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name}, cell {k}: outputs are committed; clear them (Jupyter: Edit > Clear All Outputs, or "
                f"jupyter nbconvert --clear-output --inplace {path.name})")
    assert "widgets" not in notebook.metadata, f"{path.name}: widget state is committed"


@pytest.fixture(scope="module")
def this_interpreter(tmp_path_factory):
    """A kernel manager whose kernel runs this interpreter (sys.executable), whatever kernels are installed."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    kernels = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(kernels / "this-python")  # argv: sys.executable -m ipykernel_launcher
    specs = KernelSpecManager(kernel_dirs=[str(kernels)])
    return lambda: KernelManager(kernel_name="this-python", kernel_spec_manager=specs)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_clean_from_a_fresh_kernel(path, tmp_path, this_interpreter):
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    client = NotebookClient(notebook, km=this_interpreter(), timeout=600,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    assert notebook.cells[0].outputs[0]["text"].strip() == sys.executable
    images = sum(output.get("data", {}).keys() >= {"image/png"} for cell in notebook.cells if cell.cell_type == "code"
                 for output in cell.outputs)
    assert images >= (0 if path.name == "06_ecosystem.ipynb" else 1)  # the figures are shown inline
