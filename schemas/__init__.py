"""Crisp record schemas: Arrow schemas, record types, reason codes and validation suites.

Imports nothing of ours. Each record has one module declaring its Arrow schema and version.
"""
