"""Layer 8, report: what the runs showed, for people and for scripts.

`format` turns numbers into text, `journals` holds one journal as read from disk, `plot` draws
one run, `markdown` writes the pages, `build` reads the journals and writes the report beside the
2012 figures; `bench` measures the performance figures. It may import every layer below; only
the CLI imports it.
"""
