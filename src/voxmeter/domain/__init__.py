"""The rules of metering, in plain values: no I/O, no settings.

Models, admission (the daily quota and what a call is admitted against),
validation of usage events, ledger arithmetic, report periods, token secrets
and the rules for an operation's fields. Imports only the contract.
"""
