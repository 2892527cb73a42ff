"""What to tell a team about the error its code raised: one hint per kind of error, from the exception and the task.

A failed run's reason keeps the original exception line (``KeyError: 'dep_delay'``) and adds, after ``; ``, one
short hint a student can act on when the error is one the sandbox explains:

* a missing module (:func:`missing_module_hint`): the package is not in the sandbox, the allowed packages are in
  the starter kit's package list (:data:`PACKAGE_LIST`), and nothing can be installed at run time;
* a ``KeyError`` on an input column (:func:`missing_column_hint`): the file, the columns it has, the README section
  describing the inputs;
* an ``AttributeError``/``TypeError`` from a pandas or numpy API removed in the sandbox's versions
  (:func:`removed_api_hint`): what replaced it and which version runs there;
* a network error (:func:`network_hint`): the sandbox has no network by design; the data is in ``input_dir``.

:func:`hint_for` picks the builder; :func:`last_exception` finds the exception line of a script's traceback in its
log. Everything here is pure text work on what the run left (plus reading the header line of the input CSV files):
no kernel, no Docker.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PACKAGE_LIST",
    "ReasonContext",
    "hint_for",
    "last_exception",
    "missing_column_hint",
    "missing_module_hint",
    "network_hint",
    "readme_inputs_section",
    "removed_api_hint",
]

#: Where a team finds the packages the sandbox has (written into the starter kit from the task's image).
PACKAGE_LIST = "the task's package list in the starter kit (SANDBOX_PACKAGES.md)"

#: Import names whose pip package has another name (the hint names the package to look for in the list).
_PIP_NAMES = {
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "skimage": "scikit-image",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "google.protobuf": "protobuf",
}

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MAX_COLUMNS = 20


@dataclass(frozen=True)
class ReasonContext:
    """What the hints may name about the task: its input folder, its packages, its README.

    Attributes:
        input_dir: the phase's input folder on the host (its top-level ``*.csv`` headers are read), or ``None``.
        packages: the image's pip requirement strings (``pandas==3.1.1``); versions come from ``==`` pins.
        readme_section: the heading of the task README's section on the inputs (``""``: the README in general).
    """

    input_dir: Path | None = None
    packages: tuple[str, ...] = ()
    readme_section: str = ""

    def version(self, distribution: str) -> str | None:
        """The pinned version of ``distribution`` in :attr:`packages` (``None`` when absent or unpinned)."""
        for requirement in self.packages:
            name, _, pinned = requirement.partition("==")
            if _normal(name) == _normal(distribution) and pinned.strip():
                return pinned.strip()
        return None

    def has(self, distribution: str) -> bool:
        """Whether ``distribution`` is one of :attr:`packages` (pinned or not)."""
        return any(_normal(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) == _normal(distribution) for r in self.packages)

    def input_headers(self) -> dict[str, list[str]]:
        """``{file name: header columns}`` of the top-level CSV files of :attr:`input_dir` (sorted; ``{}`` if none)."""
        if self.input_dir is None or not self.input_dir.is_dir():
            return {}
        headers: dict[str, list[str]] = {}
        for path in sorted(self.input_dir.glob("*.csv")):
            try:
                with path.open("rb") as fh:
                    first = fh.readline(256 * 1024).decode("utf-8-sig", errors="replace")
                headers[path.name] = next(csv.reader(io.StringIO(first)), [])
            except (OSError, csv.Error):
                continue
        return headers


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _clean(text: str) -> str:
    return _ANSI.sub("", text)


def readme_inputs_section(task_dir: Path) -> str:
    """The heading of the section of ``task_dir/README.md`` that describes the input columns (or files); ``""``.

    A heading naming columns wins over one naming inputs, files or data; backticks are removed.
    """
    try:
        text = (task_dir / "README.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
    headings = [m.group(1).replace("`", "").strip() for m in re.finditer(r"^#{2,4}\s+(.+)$", text, re.MULTILINE)]
    for pattern in (r"column", r"input|files|data"):
        for heading in headings:
            if re.search(pattern, heading, re.IGNORECASE):
                return heading
    return ""


# -- missing modules ---------------------------------------------------------------------------------------------


def missing_module_hint(module: str, context: ReasonContext) -> str:
    """The hint for ``ModuleNotFoundError: No module named '<module>'``.

    Args:
        module: the dotted name the error names (``xgboost``, ``sklearn.externals.joblib``).
        context: the task's packages (a submodule of an installed package is a version problem, not a missing one).
    """
    top = module.split(".")[0]
    if top == "harness":
        return (
            "the harness itself is not in the sandbox: remove the cell that imports it (e.g. harness.check(...)) "
            "from your submission and run the self-check from a terminal (harness check ...)"
        )
    package = _PIP_NAMES.get(top, top)
    if module != top and context.has(package):
        version = context.version(package)
        return (
            f"{module!r} does not exist in the sandbox's {package}{f' {version}' if version else ''}: it was "
            f"moved or removed in a newer version; see {PACKAGE_LIST} for the versions"
        )
    named = f"{top!r}" if package == top else f"{top!r} (package {package})"
    return (
        f"{named} is not in the sandbox, and nothing can be installed while it runs (there is no network, so "
        f"!pip install does nothing); use only the packages in {PACKAGE_LIST}, or ask the organisers to add it"
    )


# -- KeyError on an input column -------------------------------------------------------------------------------


def _keys(evalue: str) -> list[str]:
    """The column names a pandas ``KeyError`` value names: ``'a'``, ``"['a', 'b'] not in index"``, ``None of ...``."""
    text = evalue.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
        listed = re.search(r"\[([^\]]*)\]", text)
        if listed and ("not in index" in text or "are in the [columns]" in text):
            return re.findall(r"'([^']*)'", listed.group(1))
        return [text] if "'" not in text and '"' not in text else []
    return []


#: Characters of a team's code (its end, where the failing cell is) the hints search; bounds their cost.
_MAX_SOURCE = 200_000


def _file_of(key: str, source: str, headers: dict[str, list[str]]) -> str | None:
    """The input file the failing ``VAR[...'key'...]`` read from, when the code assigns ``VAR`` from it."""
    quoted = re.escape(key)
    # bounded: an unbounded [^\]]* made this quadratic in code holding many '[' and no ']'
    for match in re.finditer(rf"(\w+)\s*(?:\.loc\s*)?\[[^\]]{{0,200}}?['\"]{quoted}['\"]", source[-_MAX_SOURCE:]):
        variable = match.group(1)
        for assignment in re.finditer(rf"^\s*{re.escape(variable)}\s*=\s*(.+)$", source, re.MULTILINE):
            for name in headers:
                if name in assignment.group(1):
                    return name
    mentioned = [name for name in headers if name in source]
    return mentioned[0] if len(mentioned) == 1 else None


def _columns(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_COLUMNS])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _MAX_COLUMNS else "")


def missing_column_hint(evalue: str, traceback: str, source: str, context: ReasonContext) -> str:
    """The hint for a ``KeyError`` on a column of an input file, or ``""`` when it is not one.

    It is one when the input folder has CSV files and the key is a column of one of them or the traceback passes
    through pandas. The file is the one the failing ``VAR[...]`` was read from (``VAR = pd.read_csv(.../"x.csv")``
    in ``source``), or the only input file ``source`` names.

    Args:
        evalue: the ``KeyError``'s value as shown (``'dep_delay'``, with the quotes).
        traceback: the traceback text (ANSI colours are removed).
        source: the code that ran up to the error (the notebook's cells, a script's traceback and entry file).
        context: the input folder and the README's section.
    """
    headers = context.input_headers()
    keys = _keys(evalue)
    if not headers or not keys:
        return ""
    key = keys[0]
    having = [name for name, columns in headers.items() if key in columns]
    if not having and "pandas" not in _clean(traceback):
        return ""
    section = f'the section "{context.readme_section}" of' if context.readme_section else "the inputs in"
    readme = f"see {section} the task's README.md"
    name = _file_of(key, source, headers)
    if name is not None and name not in having:
        elsewhere = f"; {', '.join(having)} {'has' if len(having) == 1 else 'have'} it" if having else ""
        return (
            f"{key!r} is not a column of {name} in input_dir (its columns: {_columns(headers[name])}){elsewhere}; "
            f"{readme}"
        )
    if name is not None:  # the file has it: the frame that lacks it was made from it, not read
        return ""
    if having:
        lacking = [n for n in headers if n not in having]
        return f"{key!r} is a column of {', '.join(having)} only, not of {', '.join(lacking)}; {readme}"
    return f"{key!r} is not a column of any file in input_dir ({', '.join(headers)}); {readme}"


# -- pandas and numpy APIs removed in the sandbox's versions ----------------------------------------------------

#: ``'<class>' object has no attribute '<name>'`` of pandas -> (the version that removed it, what to use instead).
_PANDAS_REMOVED = {
    "append": ("2.0", "use pd.concat([df, other])"),
    "iteritems": ("2.0", "use .items()"),
    "ix": ("1.0", "use .loc (labels) or .iloc (positions)"),
    "lookup": ("2.0", "use .loc with .melt() or numpy indexing"),
    "mad": ("2.0", "use (df - df.mean()).abs().mean()"),
    "swapaxes": ("3.0", "use .transpose()"),
    "applymap": ("3.0", "use .map()"),
    "is_monotonic": ("2.0", "use .is_monotonic_increasing"),
    "backfill": ("3.0", "use .bfill()"),
    "pad": ("3.0", "use .ffill()"),
}
#: ``module 'numpy' has no attribute '<name>'`` -> what to use instead (removed in numpy 1.24 or 2.0).
_NUMPY_REMOVED = {
    "float": "use float or np.float64",
    "int": "use int or np.int64",
    "object": "use object",
    "str": "use str",
    "complex": "use complex",
    "NaN": "use np.nan",
    "NAN": "use np.nan",
    "Inf": "use np.inf",
    "Infinity": "use np.inf",
    "PINF": "use np.inf",
    "product": "use np.prod",
    "cumproduct": "use np.cumprod",
    "alltrue": "use np.all",
    "sometrue": "use np.any",
    "asscalar": "use .item()",
    "float_": "use np.float64",
    "unicode_": "use np.str_",
    "string_": "use np.bytes_",
    "trapz": "use np.trapezoid",
    "in1d": "use np.isin",
}
#: How pandas 2 and 3 refuse an aggregation over text columns (``groupby().mean()``, ``df.mean()``).
_TEXT_AGGREGATION = re.compile(
    r"could not convert string to float|agg function failed|does not support operation '\w+'|"
    r"Cannot perform reduction '\w+' with string dtype"
)
_PANDAS_OBJECTS = r"DataFrame|Series|Index|DataFrameGroupBy|SeriesGroupBy|Resampler|Rolling|Timestamp|StringMethods"


def _runs(context: ReasonContext, distribution: str) -> str:
    version = context.version(distribution)
    return (
        f"the sandbox runs {distribution} {version}"
        if version
        else f"the sandbox's {distribution} version is in {PACKAGE_LIST}"
    )


def removed_api_hint(ename: str, evalue: str, traceback: str, context: ReasonContext) -> str:
    """The hint for an ``AttributeError``/``TypeError`` of a pandas or numpy API removed in the sandbox's versions.

    Returns ``""`` for errors that are not about pandas or numpy (a team's own object, a typo in its own names).

    Args:
        ename: ``AttributeError`` or ``TypeError``.
        evalue: the exception's value (``'DataFrame' object has no attribute 'append'``).
        traceback: the traceback text (frames inside pandas or numpy make a ``TypeError`` theirs).
        context: the task's packages (their pinned versions are named).
    """
    text = _clean(traceback)
    if ename == "AttributeError":
        attribute = re.search(rf"'({_PANDAS_OBJECTS})' object has no attribute '(\w+)'", evalue)
        if attribute:
            kind, name = attribute.groups()
            removed = _PANDAS_REMOVED.get(name)
            if removed:
                return f"{kind}.{name} was removed in pandas {removed[0]} ({removed[1]}); {_runs(context, 'pandas')}"
            return (
                f"{_runs(context, 'pandas')}: {kind} has no {name!r} there (removed or renamed since older versions?)"
            )
        module = re.search(r"module '(numpy|pandas)(?:\.[\w.]+)?' has no attribute '(\w+)'", evalue)
        if module:
            package, name = module.groups()
            instead = _NUMPY_REMOVED.get(name) if package == "numpy" else None
            what = f"{package}.{name} was removed ({instead})" if instead else f"{package} has no {name!r} there"
            return f"{what}; {_runs(context, package)}"
        return ""
    if ename == "TypeError":
        in_pandas = "pandas" in text or re.search(rf"\b({_PANDAS_OBJECTS})\b", evalue) is not None
        if in_pandas and _TEXT_AGGREGATION.search(evalue):
            return (
                "since pandas 2.0, mean(), sum() and other aggregations no longer skip text columns: select the "
                f"numeric columns first or pass numeric_only=True; {_runs(context, 'pandas')}"
            )
        for package in ("pandas", "numpy"):
            if re.search(rf"[/\\]site-packages[/\\]{package}[/\\]", text) and "unexpected keyword argument" in evalue:
                return f"{_runs(context, package)}: that argument was removed or renamed since older versions"
    return ""


# -- network -----------------------------------------------------------------------------------------------------

_NETWORK_ERRORS = {
    "URLError",
    "gaierror",
    "ConnectionError",
    "ConnectTimeout",
    "ConnectTimeoutError",
    "NewConnectionError",
    "MaxRetryError",
    "NameResolutionError",
    "ConnectionRefusedError",
    "ConnectError",
}
_NETWORK_TEXT = re.compile(
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
    r"nodename nor servname|No address associated with hostname|Failed to resolve|getaddrinfo failed",
    re.IGNORECASE,
)


def network_hint(context: ReasonContext) -> str:
    """The hint for a network error: no network by design, the data is in ``input_dir`` (its CSV files named)."""
    files = ", ".join(context.input_headers())
    return (
        "the sandbox has no network, by design: read the task's data from input_dir"
        + (f" ({files})" if files else "")
        + " instead of downloading it"
    )


def missing_file_hint(evalue: str, context: ReasonContext) -> str:
    """The hint for a ``FileNotFoundError`` on a relative path whose file name is in ``input_dir``
    (``pd.read_csv("train.csv")`` or ``"data/train.csv"`` as on a laptop), or ``""``.

    The code runs in the submission's folder; the task's files are only in ``input_dir`` (mounted read-only)."""
    named = re.search(r"No such file or directory: (?:'([^']+)'|\"([^\"]+)\")", evalue)
    path = (named.group(1) or named.group(2)) if named else ""
    if not path or path.startswith("/"):
        return ""
    wanted = Path(path).name
    if wanted in ("", ".", "..") or context.input_dir is None:
        return ""
    try:
        if not (context.input_dir / wanted).is_file():
            return ""
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte: not an input file
        return ""
    return (
        f"{wanted} is in input_dir, not in the folder your code runs in: read it as "
        f"Path(input_dir) / {wanted!r} (input_dir is set in the parameters cell, or $HARNESS_INPUT_DIR in a script)"
    )


def _is_network(ename: str, evalue: str) -> bool:
    return ename in _NETWORK_ERRORS or (ename in {"OSError", "TimeoutError"} and bool(_NETWORK_TEXT.search(evalue)))


# -- choosing -----------------------------------------------------------------------------------------------------


def hint_for(ename: str, evalue: str, traceback: str, source: str, context: ReasonContext) -> str:
    """The one hint for an exception a team's code raised, or ``""`` when none applies.

    Args:
        ename: the exception's class name as shown (``ModuleNotFoundError``, ``KeyError``, ``gaierror``).
        evalue: its value as shown.
        traceback: the traceback text (ANSI colours allowed).
        source: the code that ran up to it (see :func:`missing_column_hint`).
        context: what the task's sandbox has.
    """
    if ename in {"ModuleNotFoundError", "ImportError"}:
        missing = re.search(r"No module named '([\w.]+)'", evalue)
        if missing:
            return missing_module_hint(missing.group(1), context)
        cannot = re.search(r"cannot import name '(\w+)' from '(\w+)", evalue)
        if cannot and cannot.group(2) in {"pandas", "numpy", "sklearn", "scipy"}:
            package = _PIP_NAMES.get(cannot.group(2), cannot.group(2))
            return f"{_runs(context, package)}, which has no {cannot.group(1)!r} (removed or moved since)"
        return ""
    if ename == "KeyError":
        return missing_column_hint(evalue, traceback, source, context)
    if ename in {"AttributeError", "TypeError"}:
        return removed_api_hint(ename, evalue, traceback, context)
    if _is_network(ename, evalue) or _NETWORK_TEXT.search(evalue):
        return network_hint(context)
    if ename == "FileNotFoundError":
        return missing_file_hint(evalue, context)
    return ""


_EXCEPTION_LINE = re.compile(
    r"^((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Interrupt|Exit|error))(?::\s?(.*))?$"
)


def last_exception(log: str) -> tuple[str, str, str] | None:
    """The last traceback of a script's log: ``(ename, evalue, traceback text)``, or ``None`` when it has none.

    ``ename`` is the class name without its module (``urllib.error.URLError`` -> ``URLError``); the traceback text
    runs from its ``Traceback (most recent call last):`` line to the exception line.
    """
    text = _clean(log)
    start = text.rfind("Traceback (most recent call last):")
    if start < 0:
        return None
    lines = text[start:].splitlines()
    for index in range(1, len(lines)):
        line = lines[index]
        if line[:1].isspace() or not line.strip():
            continue
        match = _EXCEPTION_LINE.match(line.strip())
        if match:
            return match.group(1).rsplit(".", 1)[-1], (match.group(2) or "").strip(), "\n".join(lines[: index + 1])
    return None
