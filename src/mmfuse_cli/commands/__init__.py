"""One module per CLI command: parse options, call the library, print. No logic of their own."""
