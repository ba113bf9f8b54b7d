"""Registries: pulling images (``conda_docker.registry.client``)."""

from conda_docker.registry.client import Registry, pull_image

__all__ = ["Registry", "pull_image"]
