"""Layer 5, deploy: change the fleet through the Ansible playbooks.

`ansible` is the only module that runs ansible-runner; `inventory` renders the lab's inventory;
`operations` deploys, rolls back, sets flags and throws the kill switch, with the guards
deciding what is refused; `verify` runs the testinfra suite. It may import `lab`, `guards`,
`releases` and the base modules.
"""
