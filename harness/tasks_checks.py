"""The data checks of ``harness task validate``: the task's files, the prepared data, references, inputs, isolation.

Each ``check_*`` function adds one or more :class:`~harness.tasks_report.Check` to the report and never raises for
a task problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from harness.errors import EvaluatorError
from harness.spec import PHASES, TaskSpec
from harness.starter import TEMPLATE_DIR
from harness.tasks_prepare import file_sha256, summarise_files
from harness.tasks_report import TaskValidationReport

__all__ = [
    "check_data_present",
    "check_hidden_isolated",
    "check_inputs",
    "check_references",
    "check_task_files",
]

README = "README.md"


def _csv_header(path: Path) -> list[str]:
    try:
        return [str(c) for c in pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns]
    except (ValueError, UnicodeError):  # empty or not CSV: carries no labels
        return []


def _files_below(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from sorted(p for p in folder.rglob("*") if p.is_file())


def check_task_files(spec: TaskSpec, report: TaskValidationReport) -> None:
    """The README for teams, the starter notebook (``starter/<submission.notebook>``, what
    :func:`harness.starter.write_starter_kit` copies) and the baseline named in task.yaml exist."""
    problems: list[str] = []
    readme = spec.task_dir / README
    if not readme.is_file() or not readme.read_text(encoding="utf-8", errors="replace").strip():
        problems.append(f"no {README} for teams in {spec.task_dir} (the starter kit's README is made from it)")
    notebook = spec.task_dir / TEMPLATE_DIR / spec.submission.notebook
    if not notebook.is_file():
        problems.append(
            f"no starter notebook {TEMPLATE_DIR}/{spec.submission.notebook} (the starter kit copies {TEMPLATE_DIR}/; "
            "submission.notebook names the notebook)"
        )
    if spec.baseline_path is None:
        problems.append("task.yaml names no baseline submission; add `baseline:` (a folder, .zip or .ipynb)")
    elif not spec.baseline_path.exists():
        problems.append(f"the baseline {spec.baseline_path} does not exist (task.yaml: baseline)")
    if problems:
        report.add("README, starter, baseline", "fail", "; ".join(problems))
    else:
        report.add(
            "README, starter, baseline",
            "pass",
            f"{README}, {TEMPLATE_DIR}/{spec.submission.notebook}, baseline {spec.baseline!r}",
        )


def check_data_present(spec: TaskSpec, report: TaskValidationReport) -> bool:
    """The data root, public folder, inputs and references exist and match ``manifest.json`` if any; False if not."""
    hint = f"run `harness task prepare {spec.task_dir}` first"
    missing = [
        str(p)
        for p in (
            spec.data_root,
            spec.public_dir,
            *(spec.input_dir(ph) for ph in PHASES),
            *(spec.reference_path(ph) for ph in PHASES),
        )
        if not p.exists()
    ]
    if missing:
        report.add("data prepared", "fail", f"missing: {', '.join(missing)}; {hint}")
        return False
    manifest_path = spec.data_root / "manifest.json"
    if not manifest_path.is_file():
        report.add("data prepared", "pass", f"{spec.data_root} (no manifest.json to verify against)")
        return True
    try:
        files = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
        changed = [
            name
            for name, info in files.items()
            if not (spec.data_root / name).is_file() or file_sha256(spec.data_root / name) != info["sha256"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        report.add("data prepared", "fail", f"manifest.json is malformed ({exc}); {hint}")
        return False
    if changed:
        report.add(
            "data prepared",
            "fail",
            f"{len(changed)} file(s) differ from manifest.json, first: {changed[0]}; {hint} again",
        )
        return False
    report.add("data prepared", "pass", f"{len(files)} files match manifest.json")
    return True


def check_references(spec: TaskSpec, report: TaskValidationReport) -> dict[str, pd.DataFrame]:
    """Each phase's reference loads and holds every declared split; returns ``{phase: reference}`` of those that do."""
    from harness.scoring import load_reference

    references: dict[str, pd.DataFrame] = {}
    for phase in PHASES:
        name = f"reference ({phase})"
        try:
            reference = load_reference(spec, phase)
        except EvaluatorError as exc:
            report.add(name, "fail", exc.message)
            continue
        counts = reference[spec.data.split_column].value_counts()
        absent = [s for s in spec.splits(phase) if s not in counts]
        if absent:
            report.add(
                name,
                "fail",
                f"no rows of declared split(s) {absent}; data.splits.{phase} declares {list(spec.splits(phase))}",
            )
            continue
        shares = ", ".join(f"{s} {counts[s]:,} ({counts[s] / len(reference):.0%})" for s in spec.splits(phase))
        report.add(
            name, "pass", f"{len(reference):,} rows; columns {', '.join(map(str, reference.columns))}; splits: {shares}"
        )
        references[phase] = reference
    return references


def check_inputs(spec: TaskSpec, report: TaskValidationReport, references: dict[str, pd.DataFrame]) -> None:
    """Each input folder's predict file lists exactly the reference's ids and holds no target column; the detail
    counts the folder's files per sub-folder (never one entry per file)."""
    id_col, targets = spec.predictions.id_column, set(spec.predictions.reference_targets)
    for phase in PHASES:
        name = f"input folder ({phase})"
        folder = spec.input_dir(phase)
        problems: list[str] = []
        if spec.data.predict_file:
            predict = folder / spec.data.predict_file
            if not predict.is_file():
                problems.append(f"no {spec.data.predict_file} (data.predict_file)")
            else:
                frame = pd.read_csv(predict, dtype=str, keep_default_na=False)
                leaked = sorted(targets & set(frame.columns))
                if leaked:
                    problems.append(f"{spec.data.predict_file} holds target column(s) {leaked}")
                if id_col not in frame.columns:
                    problems.append(f"{spec.data.predict_file} lacks the id column {id_col!r}")
                elif phase in references:
                    ids, ref_ids = set(frame[id_col]), set(references[phase][id_col].astype(str))
                    if ids != ref_ids:
                        problems.append(
                            f"{spec.data.predict_file} has {len(ids):,} ids, the reference "
                            f"{len(ref_ids):,}; {len(ref_ids - ids):,} missing, {len(ids - ref_ids):,} "
                            "extra"
                        )
        if problems:
            report.add(name, "fail", "; ".join(problems))
        else:
            report.add(name, "pass", summarise_files(folder))


def check_hidden_isolated(spec: TaskSpec, report: TaskValidationReport, references: dict[str, pd.DataFrame]) -> None:
    """No file teams can read holds a hidden reference or labels of a phase's rows to predict."""
    id_col, targets = spec.predictions.id_column, set(spec.predictions.reference_targets)
    hidden = spec.reference_path("test").resolve()
    visible = {"public": spec.public_dir, **{f"input ({ph})": spec.input_dir(ph) for ph in PHASES}}
    problems: list[str] = []
    hidden_hash = file_sha256(hidden)
    test_ids = set(references["test"][id_col].astype(str)) if "test" in references else set()
    for label, folder in visible.items():
        real = folder.resolve()
        if hidden.is_relative_to(real):
            problems.append(f"the hidden reference {hidden} lies inside {label} ({real})")
        for path in _files_below(folder):
            if path.resolve() == hidden or file_sha256(path) == hidden_hash:
                problems.append(f"{path} is a copy of the hidden reference")
                continue
            if path.suffix.lower() != ".csv":
                continue
            header = set(_csv_header(path))
            if id_col in header and header & targets and test_ids:
                ids = set(pd.read_csv(path, usecols=[id_col], dtype=str, keep_default_na=False)[id_col])
                overlap = ids & test_ids
                if overlap:
                    problems.append(
                        f"{path} holds labels of {len(overlap):,} hidden test rows, e.g. {sorted(overlap)[0]}"
                    )
    # The phase's own rows to predict must not be labelled in its own input folder either.
    for phase in PHASES:
        if phase not in references:
            continue
        ids_to_predict = set(references[phase][id_col].astype(str))
        for path in _files_below(spec.input_dir(phase)):
            if path.suffix.lower() != ".csv":
                continue
            header = set(_csv_header(path))
            if id_col in header and header & targets:
                ids = set(pd.read_csv(path, usecols=[id_col], dtype=str, keep_default_na=False)[id_col])
                overlap = ids & ids_to_predict
                if overlap:
                    problems.append(
                        f"{path} labels {len(overlap):,} of the {phase} rows to predict, e.g. {sorted(overlap)[0]}"
                    )
    if problems:
        report.add("hidden reference isolated", "fail", "; ".join(dict.fromkeys(problems)))
    else:
        report.add(
            "hidden reference isolated",
            "pass",
            f"{spec.data.references['test']} is outside every input and the public folder; no readable "
            "file labels the rows to predict",
        )
