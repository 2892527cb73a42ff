"""The prediction table of a task spec: plain columns (numeric, bool, text, labels), probability and quantile groups.

Part of :mod:`harness.spec` (which re-exports every name here): :class:`PredictionSpec` is ``task.yaml``'s
``predictions:`` section. Each kind of column is declared, not inferred::

    predictions:
      id_column: id
      columns:
        - {name: id, dtype: string}
        - {name: digit, dtype: int, values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], reference: label}   # a label
        - {name: arr_delay, dtype: float, min: -1440, max: 10080}                                 # a number
      probabilities:   # one column per class (p_drizzle, ...), each in [0, 1], every row summing to 1
        - {target: weather, classes: [drizzle, fog, rain, snow, sun], tolerance: 0.001}
      quantiles:       # one column per level (q10, q50, q90), optionally refused when they cross
        - {target: rentals, levels: [0.1, 0.5, 0.9], min: 0}

The reference names its truth columns independently (``reference:``, ``target:``): a probability task's
reference holds the label, never a one-hot table.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ColumnSpec", "PredictionSpec", "ProbabilityGroup", "QuantileGroup"]

_NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
_KIND_OF = {"int": "whole numbers", "string": "text (quote numbers)"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_booleans(where: str, values: object) -> object:
    """Refuse YAML booleans among labels: unquoted ``yes``/``no``/``true``/``on`` load as True/False (and would
    become 1/0)."""
    if isinstance(values, list | tuple) and any(isinstance(v, bool) for v in values):
        raise ValueError(
            f"{where} holds a boolean ({[v for v in values if isinstance(v, bool)][:3]}): YAML reads unquoted yes, "
            "no, true, false, on and off as booleans; quote each label ('yes')"
        )
    return values


class ColumnSpec(_Strict):
    """One column of the predictions file.

    Attributes:
        name: column name as written in the CSV header.
        dtype: ``string``, ``int``, ``float`` or ``bool``. Numeric columns must hold finite numbers.
        min: smallest accepted value (numeric columns only), or ``None``. Bounds keep absurd predictions
            (``1e308``) from overflowing a metric; say them in the task README.
        max: largest accepted value (numeric columns only), or ``None``.
        values: a **label** column: the allowed values (``string`` or ``int`` dtype), e.g. ``[0, 1, ..., 9]`` or
            ``[drizzle, fog, rain, snow, sun]``. Any other value is refused naming the value and the allowed set.
        coerce: a label column of dtype ``int``: also accept other spellings of an allowed number (``7.0``, ``07``,
            ``+7``). Default ``False``: the text must be exactly the value (``7``).
        reference: the reference column holding the truth for this column; default: the same name. The id column
            is matched by name.
    """

    name: Annotated[str, Field(min_length=1)]
    dtype: Literal["string", "int", "float", "bool"]
    min: float | None = None
    max: float | None = None
    values: tuple[str | int, ...] | None = None
    coerce: bool = False
    reference: Annotated[str, Field(min_length=1)] | None = None

    @field_validator("values", mode="before")
    @classmethod
    def _labels_not_booleans(cls, value: object) -> object:
        return _no_booleans("values", value)

    @model_validator(mode="after")
    def _bounds(self) -> ColumnSpec:
        if (self.min is not None or self.max is not None) and self.dtype not in ("int", "float"):
            raise ValueError(f"min/max apply to int and float columns only; column {self.name!r} is {self.dtype}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max}) for column {self.name!r}")
        if self.values is not None:
            if self.min is not None or self.max is not None:
                raise ValueError(f"column {self.name!r} is a label (values): give the allowed labels, not min/max")
            if self.dtype not in ("string", "int"):
                raise ValueError(
                    f"values (a label column) need dtype string or int; column {self.name!r} is {self.dtype}"
                )
            if not self.values:
                raise ValueError(f"values of column {self.name!r} is empty; list the allowed labels")
            wrong = [
                v for v in self.values if (self.dtype == "int") != (isinstance(v, int) and not isinstance(v, bool))
            ]
            if wrong:
                raise ValueError(
                    f"values of column {self.name!r} ({self.dtype}) must all be {_KIND_OF[self.dtype]}; got {wrong[:5]}"
                )
            if len(set(self.values)) != len(self.values):
                raise ValueError(f"values of column {self.name!r} repeat a label: {list(self.values)}")
        if self.coerce and not (self.values is not None and self.dtype == "int"):
            raise ValueError(f"coerce applies to label columns of dtype int only (column {self.name!r})")
        return self

    @property
    def is_label(self) -> bool:
        """True for a label column (``values`` given)."""
        return self.values is not None

    @property
    def reference_column(self) -> str:
        """The reference column holding this column's truth (``reference``, else ``name``)."""
        return self.reference or self.name


def _group_columns(kind: str, explicit: tuple[str, ...] | None, made: list[str], count: int) -> tuple[str, ...]:
    if explicit is None:
        return tuple(made)
    if len(explicit) != count:
        raise ValueError(f"{kind}: columns names {len(explicit)} columns for {count} entries; give one per entry")
    return explicit


class ProbabilityGroup(_Strict):
    """Class probabilities: one prediction column per class of a label held by the reference.

    Each column is a float in [0, 1]; every row's columns sum to 1 within ``tolerance`` (refused naming the first
    id and its sum). The evaluator's ``score`` gets the columns in ``classes`` order; the reference holds the true
    class in ``target`` (never one-hot).

    Attributes:
        target: reference column holding each row's true class.
        classes: the class labels (text or whole numbers), in the order of the columns.
        prefix: the columns are ``prefix + str(class)`` (``p_rain``) unless ``columns`` is given.
        columns: explicit column names, one per class in ``classes`` order.
        tolerance: largest accepted ``|row sum - 1|``.
    """

    target: Annotated[str, Field(min_length=1)]
    classes: tuple[str | int, ...]
    prefix: str = "p_"
    columns: tuple[Annotated[str, Field(min_length=1)], ...] | None = None
    tolerance: Annotated[float, Field(ge=0, le=0.5)] = 1e-3

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_not_booleans(cls, value: object) -> object:
        return _no_booleans("classes", value)

    @model_validator(mode="after")
    def _classes(self) -> ProbabilityGroup:
        if len(self.classes) < 2:
            raise ValueError(f"probabilities for {self.target!r}: give at least two classes")
        if len({str(c) for c in self.classes}) != len(self.classes):
            raise ValueError(f"probabilities for {self.target!r}: classes repeat: {list(self.classes)}")
        _group_columns(f"probabilities for {self.target!r}", self.columns, [], len(self.classes))
        return self

    @property
    def column_names(self) -> tuple[str, ...]:
        """The prediction columns, one per class, in ``classes`` order."""
        made = [f"{self.prefix}{c}" for c in self.classes]
        return _group_columns("probabilities", self.columns, made, len(self.classes))


class QuantileGroup(_Strict):
    """Quantile forecasts of one numeric target: one prediction column per quantile level.

    Attributes:
        target: reference column holding the observed value.
        levels: quantile levels in (0, 1), strictly increasing (``[0.1, 0.5, 0.9]``).
        prefix: the columns are ``prefix + f"{level * 100:g}"`` (``q10``, ``q50``, ``q90``) unless ``columns``.
        columns: explicit column names, one per level in ``levels`` order.
        monotone: refuse a row whose value at a lower level exceeds the value at a higher one (crossing).
        min: smallest accepted value of every column, or ``None``.
        max: largest accepted value of every column, or ``None``.
    """

    target: Annotated[str, Field(min_length=1)]
    levels: tuple[Annotated[float, Field(gt=0, lt=1)], ...]
    prefix: str = "q"
    columns: tuple[Annotated[str, Field(min_length=1)], ...] | None = None
    monotone: bool = True
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _levels(self) -> QuantileGroup:
        if not self.levels:
            raise ValueError(f"quantiles for {self.target!r}: give at least one level")
        if any(b <= a for a, b in zip(self.levels, self.levels[1:], strict=False)):
            raise ValueError(f"quantiles for {self.target!r}: levels must increase strictly, got {list(self.levels)}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"quantiles for {self.target!r}: min ({self.min}) is greater than max ({self.max})")
        _group_columns(f"quantiles for {self.target!r}", self.columns, [], len(self.levels))
        return self

    @property
    def column_names(self) -> tuple[str, ...]:
        """The prediction columns, one per level, in ``levels`` order."""
        made = [f"{self.prefix}{level * 100:g}" for level in self.levels]
        return _group_columns("quantiles", self.columns, made, len(self.levels))


class PredictionSpec(_Strict):
    """The prediction table a submission writes into its output folder.

    Attributes:
        file: file name inside the output folder (CSV, UTF-8, comma-separated, header row).
        id_column: column that identifies each row; must also be in ``columns`` and in the reference.
        columns: the id column and every plain required column with its dtype (numeric, bool, text or label);
            extra columns in a file are ignored. Each non-id column's truth is the reference column
            ``reference`` (default: the same name).
        probabilities: class-probability groups (:class:`ProbabilityGroup`); their columns are required too.
        quantiles: quantile-forecast groups (:class:`QuantileGroup`); their columns are required too.
        max_mb: files larger than this are refused before parsing (MiB).
    """

    file: str = "predictions.csv"
    id_column: str
    columns: tuple[ColumnSpec, ...]
    probabilities: tuple[ProbabilityGroup, ...] = ()
    quantiles: tuple[QuantileGroup, ...] = ()
    max_mb: Annotated[int, Field(gt=0)] = 256

    @model_validator(mode="after")
    def _id_in_columns(self) -> PredictionSpec:
        names = [c.name for c in self.all_columns]
        if self.id_column not in names:
            raise ValueError(f"id_column {self.id_column!r} is not among columns {names}; add it to columns")
        if len(set(names)) != len(names):
            repeated = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"duplicate column names {repeated} (columns, probabilities and quantiles together)")
        if len(names) < 2:
            raise ValueError("columns: give the id column and at least one predicted column")
        id_spec = next(c for c in self.columns if c.name == self.id_column)
        if id_spec.dtype not in ("string", "int"):
            raise ValueError(f"the id column {self.id_column!r} must have dtype string or int, got {id_spec.dtype}")
        if id_spec.is_label or id_spec.reference is not None:
            raise ValueError(f"the id column {self.id_column!r} takes neither values nor reference")
        return self

    @property
    def all_columns(self) -> tuple[ColumnSpec, ...]:
        """Every required column: ``columns``, then each probability group's (float, min 0, max 1), then each
        quantile group's (float, the group's bounds), in spec order."""
        made = [ColumnSpec(name=n, dtype="float", min=0.0, max=1.0) for g in self.probabilities for n in g.column_names]
        made += [
            ColumnSpec(name=n, dtype="float", min=g.min, max=g.max) for g in self.quantiles for n in g.column_names
        ]
        return (*self.columns, *made)

    @property
    def target_columns(self) -> tuple[str, ...]:
        """The predicted columns (every required column but the id), in :attr:`all_columns` order."""
        return tuple(c.name for c in self.all_columns if c.name != self.id_column)

    @property
    def reference_targets(self) -> tuple[str, ...]:
        """The reference columns holding the truth, unique, in spec order: each plain column's
        :attr:`ColumnSpec.reference_column`, then each group's ``target``."""
        names = [c.reference_column for c in self.columns if c.name != self.id_column]
        names += [g.target for g in self.probabilities] + [g.target for g in self.quantiles]
        return tuple(dict.fromkeys(names))

    @property
    def kind(self) -> Literal["classification", "forecast", "regression", "other"]:
        """What the task predicts, for reports: ``classification`` (a label column or probabilities),
        ``forecast`` (quantiles), ``regression`` (numeric columns only), else ``other``."""
        if self.probabilities or any(c.is_label for c in self.columns):
            return "classification"
        if self.quantiles:
            return "forecast"
        plain = [c for c in self.columns if c.name != self.id_column]
        return "regression" if plain and all(c.dtype in ("int", "float") for c in plain) else "other"
