"""What each chapter draws and tabulates, one module per chapter (``negspike.figures.<chapter>``):
functions that take the data a chapter computed and return a matplotlib figure in the book's
style, a display table, or the Markdown of a hidden text cell (and, for the performance
chapter, where its benchmark tables come from). The chapter's cells keep the computation that
teaches; these keep the plotting and bookkeeping out of the way."""
