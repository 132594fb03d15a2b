"""What every Sitewright service shares at run time: settings, logging, metrics, the log client."""
