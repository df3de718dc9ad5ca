"""Layer 2, releases: the release catalog (`router_image/releases.yaml`) and the artifacts built
from it (tarball, manifest, tree hash).

It may import only `settings`, `errors` and `yamlfile`; every layer above reads releases here.
"""
