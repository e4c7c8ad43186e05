"""issue 11 branches meet: grants, sharing catalogue, accounts and keys, audit chain

The four were written side by side, each on a branch from 232fef47a94e; none depends on
another's tables, so the merge itself changes nothing.

Revision ID: 33443e655c44
Revises: 039e9778789b, 7828aa183836, e30abd52b606, f7b108c8885e
Create Date: 2026-12-05 16:29:15.097257
"""

from collections.abc import Sequence

revision: str = "33443e655c44"
down_revision: str | Sequence[str] | None = (
    "039e9778789b",
    "7828aa183836",
    "e30abd52b606",
    "f7b108c8885e",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to do: the branches' own revisions hold every change."""


def downgrade() -> None:
    """Nothing to undo."""
