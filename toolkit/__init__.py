"""knight: deploy, break and guard an eight-node order-router lab from the host.

The toolkit drives Docker, Ansible and the routers' admin API; it never imports the router code.
"""

__version__ = "0.1.0"
