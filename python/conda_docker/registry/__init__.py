"""Registries: pulling images (``conda_docker.registry.client``)."""
