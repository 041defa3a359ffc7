"""Errors that explain bad input to the person who supplied it."""

from __future__ import annotations

from collections.abc import Sequence


class DataContractError(ValueError):
    """Input data breaks the engagement-log contract.

    The message names the file, the column, up to a few offending rows and what was
    expected, so a user can fix the file without reading leadlift's code. Several problems
    found in one pass are carried together in ``problems`` (see ``combine``).
    """

    def __init__(
        self,
        file: str,
        problem: str,
        *,
        column: str | None = None,
        rows: Sequence[str] = (),
        n_bad: int | None = None,
        expected: str | None = None,
        problems: Sequence[DataContractError] = (),
    ) -> None:
        self.file = file
        self.problem = problem
        self.column = column
        self.rows = list(rows)
        self.n_bad = n_bad if n_bad is not None else len(self.rows)
        self.expected = expected
        self.problems = list(problems)
        super().__init__(self._render())

    @classmethod
    def combine(cls, errors: Sequence[DataContractError]) -> DataContractError:
        """One error for several problems found in the same file (or the only one, as is)."""
        if not errors:
            raise ValueError("combine() needs at least one error")
        if len(errors) == 1:
            return errors[0]
        files = sorted({e.file for e in errors})
        return cls(", ".join(files), f"{len(errors)} problems found", problems=errors)

    def _render(self) -> str:
        return "\n".join(self._lines(with_file=True))

    def _lines(self, *, with_file: bool) -> list[str]:
        where = f"{self.file}" if with_file else ""
        if self.column:
            where += (", " if where else "") + f"column '{self.column}'"
        lines = [f"{where}: {self.problem}" if where else self.problem]
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.rows:
            shown = len(self.rows)
            more = f" (first {shown} of {self.n_bad})" if self.n_bad > shown else ""
            lines.append(f"  offending rows{more}:")
            lines.extend(f"    {row}" for row in self.rows)
        single_file = len({p.file for p in self.problems}) <= 1
        for i, sub in enumerate(self.problems, start=1):
            sub_lines = sub._lines(with_file=not single_file)
            lines.append(f"  {i}. {sub_lines[0]}")
            lines.extend(f"    {line}" for line in sub_lines[1:])
        return lines


class OutputError(OSError):
    """An output path cannot be written (no folder, no permission, read-only place)."""
