"""Errors that explain bad input to the person who supplied it."""

from __future__ import annotations

from collections.abc import Sequence


class DataContractError(ValueError):
    """Input data breaks the engagement-log contract.

    The message names the file, the column, up to a few offending rows and what was
    expected, so a user can fix the file without reading leadlift's code.
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
    ) -> None:
        self.file = file
        self.problem = problem
        self.column = column
        self.rows = list(rows)
        self.n_bad = n_bad if n_bad is not None else len(self.rows)
        self.expected = expected
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.file}" + (f", column '{self.column}'" if self.column else "")
        lines = [f"{where}: {self.problem}"]
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.rows:
            shown = len(self.rows)
            more = f" (first {shown} of {self.n_bad})" if self.n_bad > shown else ""
            lines.append(f"  offending rows{more}:")
            lines.extend(f"    {row}" for row in self.rows)
        return "\n".join(lines)
