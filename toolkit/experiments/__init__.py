"""Layer 7, experiments: experiment files, the runs made of them, and their journals.

`schema` holds the tables an experiment file is checked against (probes, abort conditions,
expectations), `model` the loaded experiment, `loader` reads and validates a file, `rollout`
computes the order a deploy step reaches the nodes, `activities/` one module per step kind,
`state` what the steps of one run share, `reach` which steps a fleet reached through an
inventory can take, `run` the run loop, `sampler` what the run records of the nodes as it goes,
`journal` the record it writes, `matrix` the defense-in-depth campaign. It may import every
layer below it (monitor and chaos included); only `report`, `view` and the CLI import it.
"""
