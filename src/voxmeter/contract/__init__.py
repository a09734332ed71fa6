"""The wolkvox API v2 contract: envelope, meters catalogue, error codes.

Pure data and formatting: nothing here does I/O, so the server and the client
share it.
"""
