"""Bootstrap: signed manifests of bootstrap nodes and the staggered discovery race (BOOT)."""
