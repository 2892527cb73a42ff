"""The hostile and broken submissions corpus of issue 7, written into a folder of entries (one per team).

Each :class:`Case` knows how to write its entry (a lone notebook, a script folder or an archive) into a
submissions folder, generated on the spot: nothing big is committed. The entry's name is the team's name. Cases
target the minimal fixture task (predict ``y = 3x + 1`` for the ids of ``test.csv``, write ``predictions.csv``).

Scripts that probe the sandbox (secrets, hidden files, modes, network) write what they found as JSON into
``output_dir`` next to their predictions, so a test reads the findings from the run's artifacts after the
container is gone. No case sends traffic anywhere: the network probe talks to the container's own loopback only.
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
import textwrap
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

MiB = 1024 * 1024

#: A marker written into the perfect submission: no other team's run may find it.
OTHER_TEAM_MARKER = "zq-other-team-marker-7f3e"
#: The first line of the hidden reference of the minimal task: no team's run may find it.
REFERENCE_HEADER = "id,y,split"
#: The process a notebook starts in its own session, meant to outlive the kernel (``sleep`` with this argument).
ORPHAN_SLEEP_S = "31337"


# -- code the cases run --------------------------------------------------------------------------------------


def predict(inp: str, out: str, *, mean: bool = False, tag: str = "") -> str:
    """Python source that writes the perfect (``y = 3x + 1``) or the mean predictor's ``predictions.csv``.

    Args:
        inp: expression giving the input folder (``input_dir`` in notebooks, an ``os.environ`` lookup in scripts).
        out: expression giving the output folder.
        mean: predict the mean ``y`` of ``train.csv`` for every id instead of the exact value.
        tag: a comment line, so that cases sharing this code still differ in content (no "identical" flags).

    Returns:
        The source, ending with a newline.
    """
    value = "mean" if mean else "3 * int(r['x']) + 1"
    fit = (
        f'train = list(csv.DictReader(open(os.path.join({inp}, "train.csv"))))\n'
        'mean = sum(float(r["y"]) for r in train) / len(train)\n'
        if mean
        else ""
    )
    return (
        (f"# {tag}\n" if tag else "")
        + "import csv, os\n"
        + fit
        + f'rows = list(csv.DictReader(open(os.path.join({inp}, "test.csv"))))\n'
        + f'with open(os.path.join({out}, "predictions.csv"), "w") as fh:\n'
        + '    fh.write("id,y\\n")\n'
        + "    for r in rows:\n"
        + f"        fh.write(f\"{{r['id']}},{{{value}}}\\n\")\n"
    )


SCRIPT_IO = 'os.environ["HARNESS_INPUT_DIR"]', 'os.environ["HARNESS_OUTPUT_DIR"]'
NOTEBOOK_IO = "input_dir", "output_dir"


def script_predict(*, mean: bool = False, tag: str = "") -> str:
    """:func:`predict` for a script (folders from ``HARNESS_INPUT_DIR`` / ``HARNESS_OUTPUT_DIR``)."""
    return predict(*SCRIPT_IO, mean=mean, tag=tag)


def notebook_predict(*, tag: str = "") -> str:
    """:func:`predict` for a notebook cell (folders from the injected ``input_dir`` / ``output_dir``)."""
    return predict(*NOTEBOOK_IO, tag=tag)


FINDINGS = """
import json, os
def report(name, found):
    with open(os.path.join(os.environ["HARNESS_OUTPUT_DIR"], name), "w") as fh:
        json.dump(found, fh, indent=1, sort_keys=True)
"""

#: Dumps the environment and every /proc/*/environ and /proc/*/cmdline it can read.
SECRETS_PROBE = (
    FINDINGS
    + """
found = {"env": dict(os.environ), "proc": {}}
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    for what in ("environ", "cmdline"):
        try:
            raw = open(f"/proc/{pid}/{what}", "rb").read()
        except OSError as exc:
            raw = f"<{type(exc).__name__}>".encode()
        found["proc"][f"{pid}/{what}"] = raw.decode("utf-8", "replace")
report("secrets.json", found)
"""
)

#: Walks the whole file system (but /proc, /sys, /dev) for the hidden reference and other teams' files: files
#: holding the reference's header or another team's marker (the needles are hex here, so the probe does not find
#: itself), and entries named like the harness's own folders.
HIDDEN_PROBE = (
    FINDINGS
    + f"""
needles = [bytes.fromhex({REFERENCE_HEADER.encode().hex()!r}), bytes.fromhex({OTHER_TEAM_MARKER.encode().hex()!r})]
suspects = {{"hidden", "results.sqlite", "artifacts", "submissions"}}
hits, names, scanned = [], [], 0
for root, dirs, files in os.walk("/"):
    if root in ("/proc", "/sys", "/dev"):
        dirs[:] = []
        continue
    names += [os.path.join(root, name) for name in dirs + files if name.lower() in suspects]
    for name in files:
        path = os.path.join(root, name)
        try:
            if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > 4 * 2**20:
                continue
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        scanned += 1
        hits += [path for needle in needles if needle in data]
mounts = open("/proc/self/mountinfo").read()
report("hidden.json", {{"hits": hits, "names": names, "scanned": scanned, "mounts": mounts}})
"""
)

#: Tries to change modes and owners on the read-only mounts.
CHMOD_PROBE = (
    FINDINGS
    + """
attempts = {}
targets = ["/submission", "/submission/main.py", "/input", "/input/test.csv", "/"]
for path in targets:
    for what, call in (("chmod", lambda p: os.chmod(p, 0o777)), ("chown", lambda p: os.chown(p, 0, 0))):
        try:
            call(path)
            attempts[f"{what} {path}"] = "succeeded"
        except OSError as exc:
            attempts[f"{what} {path}"] = exc.strerror
report("modes.json", attempts)
"""
)

#: Opens a TCP server on the container's own loopback, talks to it, and lists the network interfaces.
LOOPBACK_PROBE = (
    FINDINGS
    + """
import socket
found = {"interfaces": sorted(os.listdir("/sys/class/net"))}
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind(("127.0.0.1", 0))
server.listen(1)
client = socket.create_connection(server.getsockname(), timeout=5)
conn, _ = server.accept()
client.sendall(b"ping")
found["echo"] = conn.recv(4).decode()
for sock in (client, conn, server):
    sock.close()
report("network.json", found)
"""
)

FORK_BOMB = """
import os, time
print("forking", flush=True)
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.001)
"""

WRITE_10_GB = """
import os
block = b"x" * 2**20
with open(os.path.join(os.environ["HARNESS_OUTPUT_DIR"], "big.bin"), "wb") as fh:
    for _ in range(10 * 1024):
        fh.write(block)
"""

#: Sources that make ``predictions.csv`` something other than a regular file (issue 11, kind 1), by case name.
#: Each runs in a script (``out``, ``inp``: the output and input folders).
NOT_REGULAR = {
    "symlink-to-input": 'os.symlink(os.path.join(inp, "test.csv"), os.path.join(out, "predictions.csv"))\n',
    "symlink-inside-output": (
        'os.rename(os.path.join(out, "predictions.csv"), os.path.join(out, "real.csv"))\n'
        'os.symlink("real.csv", os.path.join(out, "predictions.csv"))\n'
    ),
    "symlink-to-folder": 'os.symlink("/input", os.path.join(out, "predictions.csv"))\n',
    "fifo": 'os.mkfifo(os.path.join(out, "predictions.csv"))\n',
    "socket": (
        "import socket\n"
        "os.chdir(out)\n"  # a relative name: a socket path is limited to 108 bytes
        "server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        'server.bind("predictions.csv")\n'
    ),
    "folder": (
        'os.rename(os.path.join(out, "predictions.csv"), os.path.join(out, "real.csv"))\n'
        'os.mkdir(os.path.join(out, "predictions.csv"))\n'
        'os.rename(os.path.join(out, "real.csv"), os.path.join(out, "predictions.csv", "predictions.csv"))\n'
    ),
    # Needs CAP_MKNOD: refused in the Docker sandbox (capabilities dropped, the output mount is nodev); works in
    # the process sandbox when the harness runs as root.
    "device": (
        "import stat\n"
        "try:\n"
        '    os.mknod(os.path.join(out, "predictions.csv"), 0o644 | stat.S_IFCHR, os.makedev(1, 3))\n'
        "except OSError as exc:\n"
        '    print("mknod refused:", exc.strerror)\n'
    ),
}
#: The kind of entry each :data:`NOT_REGULAR` case leaves, as the reason names it.
NOT_REGULAR_KIND = {
    "symlink-to-input": "symbolic link",
    "symlink-inside-output": "symbolic link",
    "symlink-to-folder": "symbolic link",
    "fifo": "named pipe",
    "socket": "socket",
    "folder": "directory",
    "device": "device node",
}


def not_regular_script(case: str) -> str:
    """A script that writes real predictions, then makes ``predictions.csv`` one of the :data:`NOT_REGULAR` entries
    (the link and folder cases keep the real file under another name, to point at or to hold)."""
    setup = 'out, inp = os.environ["HARNESS_OUTPUT_DIR"], os.environ["HARNESS_INPUT_DIR"]\n'
    if "real.csv" not in NOT_REGULAR[case]:
        setup += 'os.unlink(os.path.join(out, "predictions.csv"))\n'
    return script_predict(tag=f"not-regular-{case}") + setup + NOT_REGULAR[case]


#: Notebook cells that display a big rich output (issue 11, kind 4), by case name: tens of MB in one output.
BIG_DISPLAYS = {
    "svg-30mb": (
        "from IPython.display import display\n"
        "display({'image/svg+xml': '<svg xmlns=\"http://www.w3.org/2000/svg\">' + '<circle r=\"1\"/>' * 2_000_000"
        " + '</svg>'}, raw=True)"
    ),
    "png-20mb": (
        "import base64, os\n"
        "from IPython.display import display\n"
        "display({'image/png': base64.b64encode(os.urandom(15 * 2**20)).decode()}, raw=True)"
    ),
    "html-20mb": "from IPython.display import HTML, display\ndisplay(HTML('<pre>' + 'x' * (20 * 2**20) + '</pre>'))",
}

MILLION_FILES = """
import os
out = os.environ["HARNESS_OUTPUT_DIR"]
for i in range(1_000_000):
    open(os.path.join(out, f"f{i}"), "w").close()
"""


# -- entry writers ---------------------------------------------------------------------------------------------


def notebook(
    cells: list[str],
    *,
    parameters: int = 1,
    kernel: str = "python3",
) -> nbformat.NotebookNode:
    """A notebook: ``parameters`` code cells tagged ``parameters`` (defaults for input_dir/output_dir), then
    one code cell per source in ``cells``. The team's cell numbers are therefore ``parameters + i``."""
    nb = nbformat.v4.new_notebook()
    for _ in range(parameters):
        params = nbformat.v4.new_code_cell('input_dir = "data"\noutput_dir = "."')
        params.metadata["tags"] = ["parameters"]
        nb.cells.append(params)
    nb.cells += [nbformat.v4.new_code_cell(textwrap.dedent(source).strip("\n")) for source in cells]
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    return nb


def nbformat_v3(cells: list[str]) -> dict[str, object]:
    """An nbformat 3.0 notebook (worksheets, ``input`` fields) with a tagged parameters cell, as a JSON object."""
    sources = ['input_dir = "data"\noutput_dir = "."', *cells]
    v3_cells = [
        {
            "cell_type": "code",
            "collapsed": False,
            "input": source,
            "language": "python",
            "metadata": {"tags": ["parameters"]} if i == 0 else {},
            "outputs": [],
        }
        for i, source in enumerate(sources)
    ]
    return {
        "metadata": {"name": ""},
        "nbformat": 3,
        "nbformat_minor": 0,
        "worksheets": [{"cells": v3_cells, "metadata": {}}],
    }


def write_notebook(nb: nbformat.NotebookNode) -> Callable[[Path], Path]:
    """A writer of ``<folder>/<name>.ipynb``."""

    def write(path: Path) -> Path:
        nbformat.write(nb, path)
        return path

    return write


def write_bytes(data: bytes) -> Callable[[Path], Path]:
    """A writer of a file holding ``data``."""

    def write(path: Path) -> Path:
        path.write_bytes(data)
        return path

    return write


def write_script(code: str) -> Callable[[Path], Path]:
    """A writer of a script folder: ``<folder>/<name>/main.py``."""

    def write(path: Path) -> Path:
        path.mkdir(parents=True)
        (path / "main.py").write_text(textwrap.dedent(code))
        return path

    return write


def write_zip(members: dict[str, bytes], raw_names: dict[bytes, bytes] | None = None) -> Callable[[Path], Path]:
    """A writer of a zip archive; ``raw_names`` replaces name bytes afterwards (for names that are not UTF-8)."""

    def write(path: Path) -> Path:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        data = path.read_bytes()
        for old, new in (raw_names or {}).items():
            assert len(old) == len(new), "a raw name replacement must keep the length"
            data = data.replace(old, new)
        path.write_bytes(data)
        return path

    return write


def write_tar_with_link(target: str) -> Callable[[Path], Path]:
    """A writer of a .tar.gz holding ``main.py`` and ``data.csv``, a symbolic link to ``target``."""

    def write(path: Path) -> Path:
        with tarfile.open(path, "w:gz") as tf:
            code = script_predict(tag="link").encode()
            info = tarfile.TarInfo("main.py")
            info.size = len(code)
            tf.addfile(info, io.BytesIO(code))
            link = tarfile.TarInfo("data.csv")
            link.type = tarfile.SYMTYPE
            link.linkname = target
            tf.addfile(link)
        return path

    return write


def write_deflate_bomb(path: Path, gib: int = 1) -> Path:
    """A real zip holding ``main.py`` and ``gib`` GiB of zeros in about 1 MB, without compressing a GiB.

    After a full flush deflate starts afresh, so every further MiB of zeros compresses to the same bytes: the
    compressed stream is one block repeated. Sizes fit the 32-bit fields, so no zip64 record is needed.
    """
    block = bytes(MiB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    data = first + repeated * (1024 * gib - 1) + compressor.flush()
    size = 1024 * gib * MiB
    crc = 0
    for _ in range(1024 * gib):
        crc = zlib.crc32(block, crc)
    name = b"zeros.bin"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0)
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0, 0, 0, 0, 0, 0
    )
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central) + len(name), len(local) + len(name) + len(data), 0
    )
    path.write_bytes(local + name + data + central + name + end)
    return path


def write_sparse(size: int) -> Callable[[Path], Path]:
    """A writer of a sparse file of ``size`` bytes (takes no disk space)."""

    def write(path: Path) -> Path:
        with path.open("wb") as fh:
            fh.truncate(size)
        return path

    return write


# -- the corpus ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One entry of the corpus and what the harness must make of it.

    Attributes:
        team: the entry's name without suffix (the team's name in the store).
        suffix: ``""`` for a folder, else the file suffix (``.ipynb``, ``.zip``, ``.tar.gz``).
        write: writes the entry at the path it is given (``submissions/<team><suffix>``) and returns it.
        status: the run status the harness must record.
        reason: fragments the recorded reason must contain (each one a key fact a team can act on).
        notes: fragments the submission's notes must contain.
        group: ``notebook``, ``script``, ``archive`` or ``good``.
    """

    team: str
    suffix: str
    write: Callable[[Path], Path]
    status: str
    reason: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    group: str = field(default="")

    def write_into(self, folder: Path) -> Path:
        """Write the entry into ``folder`` and return its path."""
        return self.write(folder / f"{self.team}{self.suffix}")


def _nb(
    team: str,
    cells: list[str],
    status: str,
    *reason: str,
    notes: tuple[str, ...] = (),
    parameters: int = 1,
    kernel: str = "python3",
) -> Case:
    nb = notebook(cells, parameters=parameters, kernel=kernel)
    return Case(team, ".ipynb", write_notebook(nb), status, reason, notes, "notebook")


def _script(team: str, code: str, status: str, *reason: str, group: str = "script") -> Case:
    return Case(team, "", write_script(code), status, reason, (), group)


def _archive(
    team: str, suffix: str, write: Callable[[Path], Path], status: str, *reason: str, notes: tuple[str, ...] = ()
) -> Case:
    return Case(team, suffix, write, status, reason, notes, "archive")


#: A perfect notebook (MAE 0); it carries :data:`OTHER_TEAM_MARKER`, which no other team's run may find.
GOOD_PERFECT = Case(
    "good-perfect",
    ".ipynb",
    write_notebook(notebook([notebook_predict(tag=OTHER_TEAM_MARKER)])),
    "succeeded",
    group="good",
)
#: A script predicting the training mean for every id (MAE 150 on the minimal task).
GOOD_MEAN = _script("good-mean", script_predict(mean=True), "succeeded", group="good")


def cheap_cases() -> list[Case]:
    """Every case that ends within a batch's time limit of a few seconds (the mixed batch runs them together).

    Returns:
        The cases, notebooks first, then scripts and archives; team names are unique.
    """
    after = notebook_predict(tag="after")
    return [
        # -- notebooks --------------------------------------------------------------------------------------
        _nb(
            "nb-infinite-loop",
            ["x = 1", "while True:\n    pass"],
            "timed_out",
            "ran past the time limit of",
            " while ",  # issue 18: the cell named as in the executed notebook and papermill's log (Cell 4)
            "Cell 4 ",
            "was running",
            "predictions.csv had not been written yet",
        ),
        _nb(
            "nb-sys-exit-halfway",
            ["import sys\nsys.exit(0)", after],
            "invalid_output",
            "predictions.csv was not written",
            "In [3] of the executed notebook (Cell 3 in papermill's log) called sys.exit()",
            "the cells after it did not run",
        ),
        _nb(
            "nb-kernel-kills-itself",
            ["import os\nos.kill(os.getpid(), 9)", after],
            "failed",
            "the kernel died while ",
            "Cell 3 ",
            "was running",
        ),
        _nb(
            "nb-memory-blowup",
            ["blocks = []\nwhile True:\n    blocks.append(b'x' * 2**24)"],
            "out_of_memory",
            "used more than the memory limit of 256 MB while ",
            "Cell 3 ",
            "was running",
        ),
        _nb(
            "nb-input",
            ["name = input('your name? ')", after],
            "failed",
            "In [3] of the executed notebook (Cell 3 in papermill's log) raised StdinNotImplementedError",
            "input() cannot be answered",
            "no stdin",
        ),
        _nb(
            "nb-print-200mb",
            ["for _ in range(200):\n    print('x' * 2**20)"],
            "out_of_memory",
            "used more than the memory limit of 256 MB while ",
            "Cell 3 ",
            "was running",
        ),
        # Judged by its predictions (issue 11): the executed notebook has its own area and caps each output as it
        # is recorded, so printing 10 MB no longer fills the team's 8 MB output cap.
        _nb("nb-print-10mb", ["for _ in range(10):\n    print('x' * 2**20, flush=True)", after], "succeeded"),
        _nb("nb-100k-outputs", ["for i in range(100_000):\n    print(i)", after], "succeeded"),
        _nb(
            "nb-binary-garbage",
            [
                "import os, sys\n"
                "os.write(1, bytes(range(256)) * 4)\n"
                "os.write(2, b'\\xff\\xfe\\xc3\\x28 invalid utf-8\\n')\n"
                "print('lone surrogates: \\udcff \\ud800')\n"
                "sys.stdout.write(bytes(range(128, 256)).decode('latin-1'))",
                after,
            ],
            "succeeded",
        ),
        # Lone surrogates in every kind of output: jupyter_client's packer raised on them inside the kernel, which
        # lost the output and now and then the messages behind it (a finished cell waited out the time limit).
        _nb(
            "nb-lone-surrogates",
            [
                "import sys\nprint('escaped byte: \\udcff')\nsys.stderr.write('high half: \\ud83d\\n')",
                "from IPython.display import display\n"
                "display({'text/plain': 'displayed: \\udfff', 'text/html': '<b>\\ud800</b>'}, raw=True)",
                "class Shown:\n    def __repr__(self):\n        return 'result: \\udc80'\nShown()",
                after,
            ],
            "succeeded",
        ),
        _nb(
            "nb-unknown-kernel",
            [notebook_predict(tag="kernel")],
            "succeeded",
            kernel="no-such-kernel",
            notes=("declares the kernel 'no-such-kernel'; the harness runs it with the task's kernel 'python3'",),
        ),
        _nb("nb-failing-pip", ["!pip install nosuchpackage", notebook_predict(tag="pip")], "succeeded"),
        _nb(
            "nb-setsid-child",
            [
                "import subprocess\n"
                f"subprocess.Popen(['setsid', 'sleep', '{ORPHAN_SLEEP_S}'])\n"
                f"subprocess.Popen(['sleep', '{ORPHAN_SLEEP_S}'], start_new_session=True)",
                notebook_predict(tag="setsid"),
            ],
            "succeeded",
        ),
        _nb(
            "nb-no-parameters-cell",
            ["x = 1"],
            "rejected",
            "no cell of 'nb-no-parameters-cell.ipynb' is tagged 'parameters'",
            "add the tag 'parameters'",
            parameters=0,
        ),
        _nb(
            "nb-two-parameters-cells",
            ["x = 1"],
            "rejected",
            "2 cells of 'nb-two-parameters-cells.ipynb' are tagged 'parameters': cell 1",
            "keep the tag on exactly one code cell",
            parameters=2,
        ),
        Case(
            "nb-not-json",
            ".ipynb",
            write_bytes(b"print('this is a script saved as .ipynb')\n"),
            "rejected",
            ("'nb-not-json.ipynb' is not a valid notebook: not JSON",),
            group="notebook",
        ),
        # A lone surrogate in the file itself (an unpaired \ud800 escape in its JSON): papermill failed saving the
        # notebook with a UnicodeEncodeError traceback through the harness's runner, naming no cell.
        Case(
            "nb-surrogate-source",
            ".ipynb",
            write_bytes(json.dumps(notebook(["text = '\ud800'", notebook_predict(tag="surrogate")])).encode()),
            "rejected",
            (
                "'nb-surrogate-source.ipynb' is not a valid notebook: a lone surrogate (U+D800",
                "in the source of cell 2",
            ),
            group="notebook",
        ),
        Case(
            "nb-format-v3",
            ".ipynb",
            write_bytes(json.dumps(nbformat_v3([notebook_predict(tag="v3")])).encode()),
            "succeeded",
            notes=("upgraded nb-format-v3.ipynb from nbformat 3.0 to 4.", "runs with the task's kernel 'python3'"),
            group="notebook",
        ),
        # -- scripts ----------------------------------------------------------------------------------------
        _script("sc-fork-bomb", FORK_BOMB, "timed_out", "ran past the time limit of"),
        _script("sc-write-10gb", WRITE_10_GB, "failed", "filled output_dir up to its limit of 8 MB"),
        _script("sc-million-files", MILLION_FILES, "failed", "filled output_dir up to its limit of 8 MB"),
        _script("sc-secrets", SECRETS_PROBE + script_predict(tag="secrets"), "succeeded"),
        _script("sc-hidden-reference", HIDDEN_PROBE + script_predict(tag="hidden"), "succeeded"),
        _script("sc-chmod-mounts", CHMOD_PROBE + script_predict(tag="chmod"), "succeeded"),
        # -- archives ---------------------------------------------------------------------------------------
        _archive(
            "ar-zip-slip",
            ".zip",
            write_zip({"main.py": b"print(1)\n", "../../evil.py": b"print('escaped')\n"}),
            "rejected",
            "archive member '../../evil.py' contains '..'",
            "outside the submission folder",
        ),
        _archive(
            "ar-absolute-path",
            ".zip",
            write_zip({"main.py": b"print(1)\n", "/etc/cron.d/evil": b"* * * * * root true\n"}),
            "rejected",
            "archive member '/etc/cron.d/evil' has an absolute path",
        ),
        _archive(
            "ar-link-outside",
            ".tar.gz",
            write_tar_with_link("/etc/passwd"),
            "rejected",
            "'data.csv' is a link to '/etc/passwd', outside the submission folder",
        ),
        _archive(
            "ar-zip-bomb",
            ".zip",
            write_deflate_bomb,
            "rejected",
            "the unpacked submission is larger than 200.0 MiB (reached at 'zeros.bin')",
        ),
        _archive(
            "ar-nested-folders",
            ".zip",
            write_zip({"team/team/team/main.py": script_predict(tag="nested").encode()}),
            "succeeded",
            notes=("stripped the enclosing folder 'team/team/team/'",),
        ),
        _archive(
            "ar-macosx",
            ".zip",
            write_zip(
                {
                    "main.py": script_predict(tag="macosx").encode(),
                    "__MACOSX/._main.py": b"\x00\x05\x16\x07 AppleDouble",
                    ".DS_Store": b"\x00\x00\x00\x01Bud1",
                }
            ),
            "succeeded",
            notes=("dropped __MACOSX/ (1 entry)", "dropped .DS_Store (1 entry)"),
        ),
        _archive(
            "ar-non-utf8-name",
            ".zip",
            write_zip({"main.py": b"print(1)\n", "cafX.py": b""}, raw_names={b"cafX.py": b"caf\xe9.py"}),
            "rejected",
            "file name 'caf\\xe9.py' is not valid UTF-8; rename it",
        ),
        _archive("ar-empty", ".zip", write_zip({}), "rejected", "the submission is empty: it holds no files"),
        _archive(
            "ar-2gb",
            ".zip",
            write_sparse(2 * 1024 * MiB),
            "rejected",
            "the file is 2,048.0 MiB, more than the limit of 500.0 MiB",
        ),
        *issue11_output_cases(),
    ]


def big_display_cases() -> list[Case]:
    """Issue 11's kind 4: notebooks displaying tens of MB after (or before) writing correct predictions; each is
    scored. They need more time than the mixed batch's limit on a loaded 2-core host (a 30 MB message is encoded
    by the kernel and decoded by papermill), so they run in a batch of their own."""
    cases = [
        _nb(f"nb-display-{name}", [notebook_predict(tag=name), cell], "succeeded")
        for name, cell in BIG_DISPLAYS.items()
    ]
    cases.append(
        _nb("nb-display-before-predictions", [BIG_DISPLAYS["svg-30mb"], notebook_predict(tag="before")], "succeeded")
    )
    return cases


def issue11_output_cases() -> list[Case]:
    """Issue 11's kind 1 and its timed-out item, as the Docker sandbox judges them (in the mixed batch)."""
    cases = [
        _script(
            f"sc-predictions-{name}",
            not_regular_script(name),
            "invalid_output",
            f"predictions.csv is a {NOT_REGULAR_KIND[name]}; write a regular file",
        )
        for name in NOT_REGULAR
        if name != "device"
    ]
    cases.append(  # no device node can be made in the container: it exits without predictions
        _script(
            "sc-predictions-device", not_regular_script("device"), "invalid_output", "predictions.csv was not written"
        )
    )
    cases.append(
        _script(
            "sc-timeout-after-predictions",
            script_predict(tag="then-sleep") + "import time\nwhile True:\n    time.sleep(1)\n",
            "timed_out",
            "ran past the time limit of",
            "predictions.csv had already been written (",
            "a run that does not finish is not scored",
        )
    )
    return cases
