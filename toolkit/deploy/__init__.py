"""Layer 5, deploy: change the fleet through the Ansible playbooks.

`ansible` is the only module that runs ansible-runner, `remote` the only one that runs ssh
itself; `inventory` renders the lab's inventory; `fleet` reads and checks any inventory (the
fleet a command reaches); `fleet_lab` makes such a fleet, with the market its inventory names,
the lab an experiment acts on; `operations` deploys, rolls back, sets flags and throws the kill
switch, with the guards deciding what is refused; `verify` runs the testinfra suite. It may
import `lab`, `guards`, `releases` and the base modules.
"""
