"""The command line: one module per subcommand, shared options and the user-error boundary."""
