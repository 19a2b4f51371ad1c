"""Schema documents: parse both forms of the seeds, validate, and compile entries.

A schema is checked once, when it is stored, and every rule that can be decided without
data is decided there (balance of each entry type, paths, conditions, currencies), so the
posting engine only evaluates what parameters make concrete.
"""
