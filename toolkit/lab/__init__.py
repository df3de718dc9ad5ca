"""Layer 4, lab: the containers of one lab and how to reach them.

`engine` is the only module that talks to Docker; `image` builds the base and lab images;
`admin` is the client of the routers' and the venue's admin HTTP API; `tokens` derives each
node's and the venue's admin token from the lab secret; `lock` keeps mutating operations on a lab
one at a time; `paths` holds the paths inside a node; `specs` says what each container is;
`status` reads the lab's status; `lab` brings the lab up and down and inherits the baseline
primitives of `baseline`; `load` drives the load generator; `observe` says what the observe
containers are (Prometheus, Alertmanager, their webhook receiver) and writes Prometheus's targets.
It may import `releases`, `guards` and the base modules, never `deploy` or anything above.
"""
