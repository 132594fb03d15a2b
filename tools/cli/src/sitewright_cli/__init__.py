"""The `sitewright` command-line client."""
