"""The record (RunResult), its store, schema migrations, portable paths and archives."""
