"""One module per `crisp` subcommand: `register(subparsers)` adds it, `args.run(args)` runs it."""
