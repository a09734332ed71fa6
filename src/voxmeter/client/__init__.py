"""Clients of the wolkvox API v2 contract, for voxmeter and wolkvox servers alike."""
