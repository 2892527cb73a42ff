"""A process-sandbox self-check that falls back to the harness's own Python still runs its kernel with the packer.

When no environment of the task's packages can be made, ``harness check --sandbox process`` runs the notebook with
the harness's own Python, whose prefix has no ``etc/ipython`` kernel config: jupyter_client's own packer then
raised on ``print('\\ud800')`` in the kernel's IOPub thread (the output lost, tracebacks in the cell's stderr, and
now and then a finished cell waiting out the time limit). The fallback here is real: the task names a wheel file
that does not exist, so pip fails before reaching any index.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from harness.selfcheck import check
from harness.stack import KERNEL_SESSION_MODULE

pytestmark = pytest.mark.integration


def test_the_fallback_kernel_sends_lone_surrogates_as_replacement_characters(
    minimal_task: Path, tmp_path: Path
) -> None:
    task = tmp_path / "minimal-fallback"
    shutil.copytree(minimal_task, task)
    raw = yaml.safe_load((task / "task.yaml").read_text())
    raw["id"] = "minimal-fallback"
    raw["image"]["packages"] = [str(tmp_path / "absent" / "nopkg-1.0-py3-none-any.whl")]
    (task / "task.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    notebook = json.loads((task / "starter" / "solution.ipynb").read_text())
    probe = "import sys\nprint(get_ipython().kernel.session.packer)\nprint('lone \\ud800')\n"
    probe += "sys.stderr.write('err \\udcff\\n')"
    notebook["cells"].append(
        {"cell_type": "code", "execution_count": None, "id": "probe", "metadata": {}, "outputs": [], "source": probe}
    )
    path = tmp_path / "solution.ipynb"
    path.write_text(json.dumps(notebook))

    result = check(task, path, sandbox="process", artifacts_dir=tmp_path / "artifacts")
    assert result.ok, str(result)
    assert any("this machine's Python" in caveat for caveat in result.caveats), result.caveats  # the fallback ran
    executed = json.loads((tmp_path / "artifacts" / "executed.ipynb").read_text(encoding="utf-8"))
    outputs = executed["cells"][-1]["outputs"]
    streams = {o["name"]: "".join(o["text"]) for o in outputs if o["output_type"] == "stream"}
    assert streams == {"stdout": f"{KERNEL_SESSION_MODULE}.pack\nlone \ufffd\n", "stderr": "err \ufffd\n"}
