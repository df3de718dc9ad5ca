"""Layer 3, guards: the six guards by name and the set of them a run uses (`sets`), the flag
registry and its lint (`flag_registry`, guard 3), and the rollback planner (`rollback_plan`,
guard 6).

Pure decisions over data: no Docker, no Ansible, no network. It may import `releases` and the
base modules; the guards that act on a fleet do so through the layers above.
"""
