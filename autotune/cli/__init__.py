"""The `autotune` command line: one module per subcommand, loaded when it is called."""
