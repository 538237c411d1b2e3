"""The ``astromorphnet`` command's subcommands, one module each; `astromorphnet.__main__`
dispatches."""
