"""A Python client for analysts: the service's layers as GeoDataFrames (``pip install
tianjin-geo[client]``). See geo/client/README.md."""

from geo.client.client import Client
from geo.client.errors import ApiError

__all__ = ["ApiError", "Client"]
