"""SMARS, the smart market access routing system: parent orders in, child orders to the venue.

Run it as `python3 -S -P -m smars` with the release tree (the directory holding `smars/` and
`release.json`) on PYTHONPATH; the modules are named after the parts of the router.
"""

__all__: list[str] = []
