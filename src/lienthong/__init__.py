"""lienthong: the integration bus between a province's one-stop system and the national systems."""

__version__ = "0.1.0"
__all__ = ["__version__"]
