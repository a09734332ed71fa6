"""voxmeter: a self-hostable usage-metering service speaking the wolkvox API v2."""

__version__ = "0.1.0"
