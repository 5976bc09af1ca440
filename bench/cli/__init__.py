"""The command line: the parser with every subcommand registered once, one module per command family, output."""
