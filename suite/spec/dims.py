"""Search dimensions of a sweep file, each a one-key mapping in YAML::

    model:     {grid: [gmf, neumf]}         # every value, crossed with the other grid dims
    mf_dim:    {choice: [4, 8, 16]}         # one value drawn per trial (random / optuna)
    threshold: {uniform: [0.3, 0.9]}        # float drawn uniformly from [lo, hi]
    lr:        {loguniform: [1.0e-4, 1.0e-2]}
    user_dim:  {int: [2, 8]}                # integer in [lo, hi], both ends included
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """Base of every block of a sweep file: unknown keys refused, nothing coerced."""

    # strict: YAML gives real types, so "2" for an integer is a mistake, not something to coerce;
    # allow_inf_nan=False: `.inf` / `.nan` are refused where they are read, not found later.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Dim(Section):
    """One searched key: a finite list of values, or a range."""

    kind: ClassVar[str]

    def candidates(self) -> list[Any]:
        """The values validated against RunConfig: every listed value, or both range ends."""
        raise NotImplementedError

    @property
    def discrete(self) -> bool:
        """True for a finite list of values (grid, choice)."""
        return self.kind in ("grid", "choice")

    def n_values(self) -> int | None:
        """How many distinct values the dim can take (None: a continuum)."""
        if self.discrete:
            return len(self.candidates())
        if self.kind == "int":
            lo, hi = self.candidates()
            return hi - lo + 1
        return None


class GridDim(Dim):
    """Every listed value, crossed with the other grid dims (`tune.grid_search`)."""

    kind: ClassVar[str] = "grid"
    grid: list[Any] = Field(min_length=1)

    def candidates(self) -> list[Any]:
        """The listed values."""
        return list(self.grid)


class ChoiceDim(Dim):
    """One of the listed values, drawn per trial (`tune.choice`); random or optuna search."""

    kind: ClassVar[str] = "choice"
    choice: list[Any] = Field(min_length=1)

    def candidates(self) -> list[Any]:
        """The listed values."""
        return list(self.choice)


class UniformDim(Dim):
    """A float drawn uniformly from [lo, hi] (`tune.uniform`)."""

    kind: ClassVar[str] = "uniform"
    uniform: list[float] = Field(min_length=2, max_length=2)

    def candidates(self) -> list[Any]:
        """[lo, hi]."""
        return list(self.uniform)


class LogUniformDim(Dim):
    """A float drawn log-uniformly from [lo, hi], lo > 0 (`tune.loguniform`)."""

    kind: ClassVar[str] = "loguniform"
    loguniform: list[float] = Field(min_length=2, max_length=2)

    def candidates(self) -> list[Any]:
        """[lo, hi]."""
        return list(self.loguniform)


class IntDim(Dim):
    """An integer drawn from [lo, hi], both ends included (`tune.randint(lo, hi + 1)`)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
    kind: ClassVar[str] = "int"
    int_: list[int] = Field(alias="int", min_length=2, max_length=2)

    def candidates(self) -> list[Any]:
        """[lo, hi]."""
        return list(self.int_)


SearchDim = GridDim | ChoiceDim | UniformDim | LogUniformDim | IntDim
DIM_CLASSES: dict[str, type[Dim]] = {
    "grid": GridDim, "choice": ChoiceDim, "uniform": UniformDim, "loguniform": LogUniformDim,
    "int": IntDim,
}
DIM_KINDS = tuple(DIM_CLASSES)
