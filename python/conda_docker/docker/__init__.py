"""Images and layers (``conda_docker.docker.base``)."""
