"""Layer 6, chaos: faults on lab nodes and the seeded fault campaign.

`fault` is the base class (a fault on one node with its undo), `kinds/` holds one module per
kind of fault and the registry that finds them by name, `campaign` deploys under seeded fault
schedules and counts mixed fleets and lost orders. Chaos may import the layers below it
(settings, releases, guards, lab, deploy); nothing below imports chaos.
"""
