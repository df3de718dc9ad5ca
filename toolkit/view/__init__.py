"""Layer 9, view: what the CLI shows on a terminal while long work runs, as rich renderables.
`run` is the live table of one experiment run, drawn from its journal alone (nothing is shown
that the journal does not hold); `progress` counts done items and estimates the time left (the
matrix, the fault campaign). It may import every layer below it; only the CLI imports it, and
the CLI does the drawing.
"""
