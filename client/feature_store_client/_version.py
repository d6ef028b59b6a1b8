__version__ = "1.0.0"
"""The API's version (the service's core.VERSION) this client was released with."""
