"""Chaos Toolkit controls, one module each (declared in an experiment's `controls`):

- `guards`: before the experiment, the lab is held (no other knight run meanwhile), every
  fault and load left behind is ended, and the lab reset to its baseline with the guards of
  the configuration (`knight_guards`);
- `refusal`: when a guard refuses a step of the method (a deploy on a partial fleet), the rest
  of the method does not run (knight's `on_refused: stop`); the rollbacks do;
- `cleanup`: after the experiment, the market is closed, every fault undone, every load ended,
  and the venue's series and the run's outcome recorded in the journal (`extensions`).
"""
