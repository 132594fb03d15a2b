"""Entry point of the `sitewright` command (filled in by issue 6)."""


def run() -> None:
    raise SystemExit("sitewright: not implemented yet")
