"""The metering domain: tokens, validation of usage, reports from the ledger."""
