"""Small helpers the book's chapters share, so that a chapter's cells show its idea."""
from __future__ import annotations

import pandas as pd

__all__ = ["show"]


def show(df: pd.DataFrame, fmt=None, precision: int = 3) -> None:
    """Display ``df`` as a table without pandas' row numbers (a named index becomes the first
    column(s)). ``fmt``: one format for every number column, or a dict of formats by column."""
    from IPython.display import display

    if df.index.names != [None]:
        df = df.reset_index()
    if isinstance(df.columns, pd.MultiIndex):
        df = df.set_axis([", ".join(str(p) for p in c if p != "") for c in df.columns], axis=1)
    if fmt is not None and not isinstance(fmt, dict):  # one format for the numbers, none for the label columns
        fmt = {c: fmt for c in df.columns if pd.api.types.is_numeric_dtype(df[c])}
    display(df.style.hide(axis="index").format(fmt, precision=precision, na_rep="–"))
